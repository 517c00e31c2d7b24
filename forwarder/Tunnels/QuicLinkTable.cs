using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>
/// Which QUIC link two nodes share when each opened one to the other (both punched or dialled at
/// once): the one the node whose name sorts lower (ordinal) opened, on both sides, so the nodes
/// agree without a word. The higher-named node opens its streams on the link the lower one
/// opened as soon as that link arrives, and drains its own (<see cref="QuicLinkSession.Drain"/>):
/// no new streams, the open ones finish, then it closes. The lower-named node always uses its
/// own link, and the one the higher-named node opened to it ends when that node drains it.
/// </summary>
internal sealed class QuicLinkTable(ConfigSource source, Func<ConnectionContext, string, CancellationToken, Task> serve)
{
    private readonly Dictionary<string, QuicLinkSession> _accepted = new(StringComparer.Ordinal);

    /// <summary>A link the named peer opened to this node that this node should use for its own streams from now on.</summary>
    public event Action<string, QuicLinkSession>? Won;

    /// <summary>Whether a link <paramref name="opener"/> opened to <paramref name="other"/> is the one they share.</summary>
    public static bool Wins(string opener, string other) => string.CompareOrdinal(opener, other) < 0;

    /// <summary>Serves the streams <paramref name="peer"/> opens on a QUIC link between it and this node, whichever end opened it.</summary>
    public Func<ConnectionContext, Task> ServerFor(string peer, CancellationToken stopping) => stream => serve(stream, peer, stopping);

    /// <summary>The link <paramref name="peer"/> opened that this node shares with it, if one is up.</summary>
    public QuicLinkSession? SharedFrom(string peer)
    {
        lock (_accepted)
        {
            return _accepted.TryGetValue(peer, out var session) && !session.Completion.IsCompleted ? session : null;
        }
    }

    /// <summary>
    /// A link <paramref name="peer"/> opened to this node is up: if it is the shared one, this
    /// node's own streams to the peer take it until it ends.
    /// </summary>
    public void Accepted(string peer, QuicLinkSession session)
    {
        if (source.Initial.Node is not { } node || !Wins(peer, node.Name))
        {
            return;
        }

        lock (_accepted)
        {
            _accepted[peer] = session;
        }

        _ = ForgetWhenEndedAsync(peer, session);
        Won?.Invoke(peer, session);
    }

    private async Task ForgetWhenEndedAsync(string peer, QuicLinkSession session)
    {
        await session.Completion.ConfigureAwait(false);
        lock (_accepted)
        {
            if (_accepted.TryGetValue(peer, out var current) && current == session)
            {
                _accepted.Remove(peer);
            }
        }
    }
}
