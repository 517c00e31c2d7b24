using System.Net;

namespace Forwarder.Relay;

/// <summary>
/// Tokens nodes sent the relay from the port they are about to punch from, each with the address
/// it came from (after the node's NAT): a node then names its token over its authenticated
/// session, so only the node that sent it learns or hands out that address. A token answers
/// once; one nobody names expires after <see cref="Lifetime"/>. The UDP rendezvous and the TCP
/// one keep a table each, so an address seen over one protocol never stands for the other.
/// </summary>
internal sealed class RendezvousTokens(TimeProvider time)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Tokens nobody waits for yet, kept at most this many: anyone can send tokens (over UDP from
    /// spoofed sources too), so a flood fills the table and is then dropped, while tokens a node
    /// already named over its session still get through.
    /// </summary>
    public const int MaxUnclaimed = 4096;

    /// <summary>
    /// Tokens nobody waits for yet from one source (an IPv4 address or an IPv6 /64, see
    /// <see cref="SourceKey"/>), at most: the sender is known by
    /// nothing else until a node names its token, so this is the quota that keeps one host (a
    /// node, or anyone) from filling the table and dropping every other node's tokens. A site's
    /// nodes behind one NAT share it; theirs are named within seconds.
    /// </summary>
    public const int MaxUnclaimedPerSource = 64;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, (IPEndPoint Seen, long At, TaskCompletionSource? Named)> _unclaimed = new(StringComparer.Ordinal);
    private readonly Dictionary<IPAddress, int> _perSource = [];
    private readonly Dictionary<string, TaskCompletionSource<IPEndPoint>> _waiting = new(StringComparer.Ordinal);
    private long _sweptAt;

    /// <summary>Tokens seen that nobody has asked for yet.</summary>
    public int Unclaimed
    {
        get
        {
            lock (_lock)
            {
                return _unclaimed.Count;
            }
        }
    }

    /// <summary>Where <paramref name="token"/> came from, waiting up to <paramref name="timeout"/> for it; null if it never came or expired. A token answers once.</summary>
    public async Task<IPEndPoint?> SeenAsync(string token, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource<IPEndPoint> waiter;
        lock (_lock)
        {
            if (Remove(token) is { } seen && !Expired(seen.At, time.GetTimestamp()))
            {
                seen.Named?.TrySetResult();
                return seen.Seen;
            }

            if (!_waiting.TryGetValue(token, out waiter!))
            {
                waiter = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiting[token] = waiter;
            }
        }

        try
        {
            return await waiter.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            lock (_lock)
            {
                // Only this call's waiter: another asking for the same token may have replaced it.
                if (_waiting.TryGetValue(token, out var current) && current == waiter)
                {
                    _waiting.Remove(token);
                }
            }
        }
    }

    /// <summary>
    /// Hands the address to whoever waits for the token, else keeps it (bounded) for a node about
    /// to name it; <paramref name="named"/>, if given, completes when a node names the token (at
    /// once when one already waits), and never when nobody does or the table had no room.
    /// </summary>
    public void Note(string token, IPEndPoint seen, TaskCompletionSource? named = null)
    {
        TaskCompletionSource<IPEndPoint>? waiter;
        lock (_lock)
        {
            if (!_waiting.Remove(token, out waiter))
            {
                var now = time.GetTimestamp();
                var source = SourceKey.Of(seen.Address);
                if ((_unclaimed.Count >= MaxUnclaimed || FromSource(source) >= MaxUnclaimedPerSource) && time.GetElapsedTime(_sweptAt, now) >= TimeSpan.FromSeconds(1))
                {
                    // At most once a second, so a flood costs one scan a second, not one per token.
                    _sweptAt = now;
                    foreach (var (key, value) in _unclaimed)
                    {
                        if (Expired(value.At, now))
                        {
                            Remove(key);
                        }
                    }
                }

                // A token sent again (over UDP, nodes send theirs more than once) keeps its place.
                Remove(token);
                if (_unclaimed.Count < MaxUnclaimed && FromSource(source) < MaxUnclaimedPerSource)
                {
                    _unclaimed[token] = (seen, now, named);
                    _perSource[source] = FromSource(source) + 1;
                }

                return;
            }
        }

        named?.TrySetResult();
        waiter.TrySetResult(seen);
    }

    /// <summary>Tokens kept from <paramref name="source"/>, a <see cref="SourceKey"/>.</summary>
    private int FromSource(IPAddress source) => _perSource.GetValueOrDefault(source);

    /// <summary>Takes a token out of the unclaimed table and its source's count (under the lock).</summary>
    private (IPEndPoint Seen, long At, TaskCompletionSource? Named)? Remove(string token)
    {
        if (!_unclaimed.Remove(token, out var entry))
        {
            return null;
        }

        var source = SourceKey.Of(entry.Seen.Address);
        var left = FromSource(source) - 1;
        if (left == 0)
        {
            _perSource.Remove(source);
        }
        else
        {
            _perSource[source] = left;
        }

        return entry;
    }

    private bool Expired(long at, long now) => time.GetElapsedTime(at, now) > Lifetime;
}
