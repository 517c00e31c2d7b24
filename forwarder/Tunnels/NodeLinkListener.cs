using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using Forwarder.L4;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// Where peers' links arrive (<c>node.listen</c>): each connection must complete TLS 1.3 with a
/// node's certificate from the mesh CA, of a node in <c>node.peers</c> (unless
/// <c>node.acceptUnlistedPeers</c>), before any stream opens; then each stream is served by
/// <see cref="HostedEndpointServer"/>. Refused links are logged with the reason and counted. When
/// this node dials any peer over QUIC (<see cref="NodeConfig.AcceptsQuic"/>), the same port takes
/// QUIC links over UDP too (<see cref="QuicLinkListener"/>).
/// </summary>
internal sealed partial class NodeLinkListener(
    ConfigSource source,
    IConnectionListenerFactory listeners,
    HostedEndpointServer streams,
    QuicLinkTable quicLinks,
    HolePunching punching,
    TcpPunching tcpPunching,
    MemoryPool<byte> pool,
    ForwarderMetrics metrics,
    ILogger<NodeLinkListener> logger) : IHostedService, IAsyncDisposable
{
    /// <summary>The listener name this node's links are counted under in /metrics.</summary>
    public const string MetricsName = "node-links";

    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long the port pauses after a failed accept (out of descriptors), as the listeners do: the connection waits in the backlog.</summary>
    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<YamuxSession, string> _sessions = new();
    private readonly LogThrottle _acceptLog = new();
    private readonly CancellationTokenSource _stopping = new();
    private IConnectionListener? _listener;
    private QuicLinkListener? _quic;
    private NodeCredentials? _credentials;
    private Task _accepting = Task.CompletedTask;

    /// <summary>Where links are accepted; null when this node has no node.listen.</summary>
    public System.Net.EndPoint? BoundEndPoint => _listener?.EndPoint;

    /// <summary>Where QUIC links are accepted (the same port, over UDP); null when this node takes none.</summary>
    public System.Net.IPEndPoint? QuicEndPoint => _quic?.EndPoint;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (source.Initial.Node is not { ListenEndPoint: { } endPoint } node)
        {
            return;
        }

        _credentials = new NodeCredentials(node, logger);
        _listener = await listeners.BindAsync(endPoint, cancellationToken).ConfigureAwait(false);
        _accepting = AcceptLoopAsync(_listener);
        LogListening(logger, node.Name, _listener.EndPoint);
        tcpPunching.Attach((connection, peer) => ServeLinkAsync(connection, LinkPath.PunchedTcp, peer), _stopping.Token);
        if (node.AcceptsQuic)
        {
            // The port TCP got, so one HOST:PORT in peers' configs names both (it differs from node.listen's when that asks for port 0).
            // A port taken over UDP costs QUIC links and punched holes, not the node: TCP links and relays carry on.
            var udp = new System.Net.IPEndPoint(endPoint.Address, ((System.Net.IPEndPoint)_listener.EndPoint).Port);
            try
            {
                _quic = QuicLinkListener.Start(udp, node, _credentials, quicLinks, metrics, logger);
            }
            catch (SocketException ex)
            {
                metrics.QuicLinkPortBound(false);
                LogNoQuic(logger, node.Name, udp, ex.SocketErrorCode);
                return;
            }

            metrics.QuicLinkPortBound(true);
            punching.Attach(_quic);
            LogListeningQuic(logger, node.Name, _quic.EndPoint);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        tcpPunching.Detach();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_quic is { } quic)
        {
            // Introductions still arriving over relay sessions find no listener to send from.
            punching.Detach(quic);
            await quic.DisposeAsync().ConfigureAwait(false);
        }

        if (_listener is { } listener)
        {
            await listener.UnbindAsync(cancellationToken).ConfigureAwait(false);
            await _accepting.ConfigureAwait(false);
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var session in _sessions.Keys)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        _credentials?.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task AcceptLoopAsync(IConnectionListener listener)
    {
        while (true)
        {
            ConnectionContext? connection;
            try
            {
                connection = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Out of file descriptors (or the reserve not back yet) or memory: the port pauses
                // and tries again, as the listeners do, rather than stop taking links for good.
                var failure = AcceptFailures.Classify(ex);
                metrics.Listener(MetricsName).AcceptFailed(failure);
                if (_acceptLog.TryLog(MetricsName, AcceptFailures.Label(failure), out var more))
                {
                    LogAcceptFailed(logger, AcceptFailures.Label(failure), ex.Message, AcceptRetryDelay.TotalMilliseconds, more);
                }

                await Task.Delay(AcceptRetryDelay).ConfigureAwait(false);
                continue;
            }

            if (connection is null)
            {
                return;
            }

            _ = ServeLinkAsync(connection, LinkPath.DirectTcp, introduced: null);
        }
    }

    /// <summary>One peer's link, from handshake to the end of its session; never throws.</summary>
    /// <param name="path">How the connection came: to the listener (direct-tcp), or by simultaneous open (punched-tcp).</param>
    /// <param name="introduced">The node a relay introduced for a punched link: no other may take it.</param>
    private async Task ServeLinkAsync(ConnectionContext connection, LinkPath path, string? introduced)
    {
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        var node = source.Initial.Node!;
        var verdict = new PeerVerdict();
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(HandshakeTimeout);
            Func<string, string?> refuses = introduced is null ? node.Refuses : name => name == introduced ? node.Refuses(name) : $"the relay introduced node {introduced}, not {name}";
            await ssl.AuthenticateAsServerAsync(_credentials!.ServerOptions(NodeCredentials.LinkProtocol, verdict, refuses), deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A foreign certificate, a relay's, an unlisted node's, none, not TLS at all: refused before any stream.
            metrics.LinkRefused(verdict.Refusal ?? LinkRefusal.Certificate);
            LogRefused(logger, connection.RemoteEndPoint?.ToString() ?? "?", verdict.Reason ?? ex.Message);
            await ssl.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        var peer = verdict.Name!;
        await using var link = new TlsConnection(connection, ssl, carrier, LinkDialer.CloseTimeout);
        var session = new YamuxSession(link, isClient: false, LinkDialer.Options(node.KeepAlive, pool));
        _sessions[session] = peer;
        var peerMetrics = metrics.Peer(peer);
        peerMetrics.LinkUp();
        LogPeerLinked(logger, peer, connection.RemoteEndPoint?.ToString() ?? "?");
        LogCipherSuite(logger, peer, link.CipherSuite);
        session.Start();
        try
        {
            while (await session.AcceptStreamAsync(_stopping.Token).ConfigureAwait(false) is { } stream)
            {
                _ = streams.ServeAsync(stream, peer, path, _stopping.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
        finally
        {
            _sessions.TryRemove(session, out _);
            peerMetrics.LinkDown();

            // The session's teardown decides whether its output was cut: only once it is disposed is that known.
            await session.DisposeAsync().ConfigureAwait(false);
            if (session.OutputCut)
            {
                NodeLinks.LogOutputCut(logger, peer, path, session.Options.CloseTimeout);
            }

            LogPeerUnlinked(logger, peer, session.Failure?.Message ?? (session.RemoteGoAwayCode is { } code ? $"go-away {code}" : "closed"));
        }
    }

    [LoggerMessage(EventId = 711, Level = LogLevel.Information, Message = "Node {Node} accepting links on {EndPoint}")]
    private static partial void LogListening(ILogger logger, string node, System.Net.EndPoint endPoint);

    [LoggerMessage(EventId = 736, Level = LogLevel.Error, Message = "Node link port: accept failed ({Reason}: {Error}); paused {PauseMs} ms before each retry ({Suppressed} more since the last such line)")]
    private static partial void LogAcceptFailed(ILogger logger, string reason, string error, double pauseMs, long suppressed);

    [LoggerMessage(EventId = 734, Level = LogLevel.Information, Message = "Node {Node} accepting QUIC links on {EndPoint} (UDP)")]
    private static partial void LogListeningQuic(ILogger logger, string node, System.Net.EndPoint endPoint);

    [LoggerMessage(EventId = 735, Level = LogLevel.Warning, Message = "Node {Node} cannot take QUIC links on {EndPoint} (UDP: {Error}); peers reach it over TCP or a relay, and it answers no hole punching")]
    private static partial void LogNoQuic(ILogger logger, string node, System.Net.EndPoint endPoint, SocketError error);

    [LoggerMessage(EventId = 712, Level = LogLevel.Information, Message = "Node {Peer} linked from {Remote}")]
    private static partial void LogPeerLinked(ILogger logger, string peer, string remote);

    [LoggerMessage(EventId = 765, Level = LogLevel.Debug, Message = "Link from node {Peer} uses {CipherSuite}")]
    internal static partial void LogCipherSuite(ILogger logger, string peer, TlsCipherSuite cipherSuite);

    [LoggerMessage(EventId = 715, Level = LogLevel.Information, Message = "Link from node {Peer} ended ({Reason})")]
    private static partial void LogPeerUnlinked(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 713, Level = LogLevel.Warning, Message = "Link from {Remote} refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason);
}
