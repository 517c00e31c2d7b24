using System.Collections.Concurrent;
using System.Net;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Transports.Quic;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// Where peers' QUIC links arrive: the node listener's port, over UDP. A peer is admitted during
/// the handshake by the TCP link's own checks (<see cref="NodeCredentials.QuicServerOptions"/>);
/// each stream it then opens is served by <see cref="HostedEndpointServer"/>, as a yamux stream is.
/// A link opened by a peer whose name sorts before this node's carries this node's streams to it
/// too (<see cref="QuicLinkTable"/>).
/// </summary>
internal sealed partial class QuicLinkListener : IAsyncDisposable
{
    private readonly QuicListener _listener;
    private readonly QuicLinkTable _table;
    private readonly ForwarderMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<QuicConnection, Task> _links = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _accepting;

    private QuicLinkListener(QuicListener listener, QuicLinkTable table, ForwarderMetrics metrics, ILogger logger)
    {
        (_listener, _table, _metrics, _logger) = (listener, table, metrics, logger);
        _accepting = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint => _listener.LocalEndPoint;

    /// <summary>Sends a datagram that is not QUIC from the link port (hole punching's tokens and probes), at most <paramref name="hopLimit"/> hops far if given.</summary>
    public void Send(ReadOnlySpan<byte> datagram, IPEndPoint to, int? hopLimit = null) => _listener.Send(datagram, to, hopLimit);

    /// <exception cref="System.Net.Sockets.SocketException">The UDP port is taken.</exception>
    public static QuicLinkListener Start(IPEndPoint endPoint, NodeConfig node, NodeCredentials credentials, QuicLinkTable table, ForwarderMetrics metrics, ILogger logger)
    {
        var options = credentials.QuicServerOptions(node.Refuses, verdict =>
        {
            metrics.LinkRefused(verdict.Refusal ?? LinkRefusal.Certificate);
            LogRefused(logger, verdict.Reason ?? "refused");
        });
        return new QuicLinkListener(QuicListener.Bind(endPoint, options), table, metrics, logger);
    }

    /// <summary>
    /// Stops accepting, closes the links (their CONNECTION_CLOSE still leaves through the socket,
    /// so peers learn at once instead of at their idle timeout), waits for their loops, then closes the socket.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _accepting.ConfigureAwait(false);
        foreach (var (connection, serving) in _links)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            await serving.ConfigureAwait(false);
        }

        await _listener.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var connection = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);

                // Listed before it starts, so its own removal at the end cannot come first.
                var serving = new Task<Task>(() => ServeLinkAsync(connection));
                _links[connection] = serving.Unwrap();
                serving.Start(TaskScheduler.Default);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
        {
            // Stopping.
        }
    }

    /// <summary>One peer's link, from its admitted handshake to its end; never throws.</summary>
    private async Task ServeLinkAsync(QuicConnection connection)
    {
        if (connection.RemoteCertificate is not { } certificate || MeshIdentity.Of(certificate) is not var (_, peer))
        {
            // The handshake's check admits only named mesh nodes; fail closed should that ever change.
            LogRefused(_logger, "an admitted peer without a mesh node name");
            await connection.DisposeAsync().ConfigureAwait(false);
            _links.TryRemove(connection, out _);
            return;
        }

        var peerMetrics = _metrics.Peer(peer);
        peerMetrics.LinkUp();
        LogPeerLinked(_logger, peer, connection.RemoteEndPoint?.ToString() ?? "?");
        var session = new QuicLinkSession(connection, _table.ServerFor(peer, _stopping.Token));
        _table.Accepted(peer, session);
        await session.Completion.ConfigureAwait(false);
        peerMetrics.LinkDown();
        LogPeerUnlinked(_logger, peer, _stopping.IsCancellationRequested ? "shutting down" : session.EndReason);
        await connection.DisposeAsync().ConfigureAwait(false);
        _links.TryRemove(connection, out _);
    }

    [LoggerMessage(EventId = 731, Level = LogLevel.Information, Message = "Node {Peer} linked over QUIC from {Remote}")]
    private static partial void LogPeerLinked(ILogger logger, string peer, string remote);

    [LoggerMessage(EventId = 732, Level = LogLevel.Information, Message = "QUIC link from node {Peer} ended ({Reason})")]
    private static partial void LogPeerUnlinked(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 733, Level = LogLevel.Warning, Message = "QUIC link refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
