using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Security;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Tunnels;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <summary>
/// The relay: nodes dial in, prove a node's certificate from the mesh CA over TLS 1.3, and register
/// under the name that certificate holds (no other); a registered node then asks for streams to
/// other registered nodes, which the relay opens on their sessions and joins to the asker's,
/// within the asker's stream and bandwidth limits; it also introduces nodes to each other for
/// hole punching (UDP) and TCP simultaneous open. The relay sees only which node talks to
/// which target, never touches what the streams carry beyond copying it.
/// </summary>
internal sealed partial class RelayServer(RelayConfig config, IConnectionListenerFactory listeners, RelayRegistry registry, MemoryPool<byte> pool, TimeProvider time, ILogger<RelayServer> logger) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan FarAnswerTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How long the listen port pauses after a failed accept (out of descriptors): the connection waits in the backlog.</summary>
    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(250);

    private readonly NodeCredentials _credentials = new(config.Name, config.Identity, config.Authority, logger);
    private readonly YamuxOptions _mux = LinkDialer.Options(NodeConfig.DefaultKeepAlive, pool);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Task, byte> _sessions = new();
    private readonly LogThrottle _acceptLog = new();
    private IConnectionListener? _listener;
    private RelayRendezvous? _rendezvous;
    private Task _accepting = Task.CompletedTask;

    public System.Net.EndPoint? BoundEndPoint => _listener?.EndPoint;

    /// <summary>Connections being served, from their accept: nodes' sessions and TCP rendezvous ones (whose deadlines run from then).</summary>
    internal int Connections => _sessions.Count;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _listener = await listeners.BindAsync(config.ListenEndPoint, cancellationToken).ConfigureAwait(false);
        registry.TcpTokens = TcpTokens;
        _accepting = AcceptLoopAsync(_listener);
        LogListening(logger, config.Name, _listener.EndPoint);

        // The same port number over UDP, so nodes need no second address to punch holes with. A
        // port taken over UDP costs the introductions, not the relay.
        var udp = new System.Net.IPEndPoint(config.ListenEndPoint.Address, ((System.Net.IPEndPoint)_listener.EndPoint).Port);
        try
        {
            _rendezvous = new RelayRendezvous(udp, time);
            registry.UdpTokens = _rendezvous.Tokens;
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            LogNoRendezvous(logger, udp, ex.SocketErrorCode);
        }

        StartSplicing();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_listener is { } listener)
        {
            await listener.UnbindAsync(cancellationToken).ConfigureAwait(false);
            await _accepting.ConfigureAwait(false);
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(_sessions.Keys).ConfigureAwait(false);
        await StopSplicingAsync().ConfigureAwait(false);
        if (_rendezvous is { } rendezvous)
        {
            await rendezvous.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        _credentials.Dispose();
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
                // and tries again, as the listeners do, rather than stop taking nodes for good. A
                // flood fails thousands of accepts: one line every few seconds says how many.
                var reason = AcceptFailures.Label(AcceptFailures.Classify(ex));
                registry.AcceptFailed();
                if (_acceptLog.TryLog(config.Name, reason, out var more))
                {
                    LogAcceptFailed(logger, config.Name, reason, ex.Message, AcceptRetryDelay.TotalMilliseconds, more);
                }

                await Task.Delay(AcceptRetryDelay).ConfigureAwait(false);
                continue;
            }

            if (connection is null)
            {
                return;
            }

            var serving = ServeNodeAsync(connection);
            _sessions[serving] = 0;
            _ = serving.ContinueWith(static (task, state) => ((ConcurrentDictionary<Task, byte>)state!).TryRemove(task, out _), _sessions, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>One node's connection, from handshake to the end of its session; never throws.</summary>
    private async Task ServeNodeAsync(ConnectionContext connection)
    {
        if (await TcpRendezvousAsync(connection).ConfigureAwait(false))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        var remote = connection.RemoteEndPoint?.ToString() ?? "?";
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        var verdict = new PeerVerdict();
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(HandshakeTimeout);
            await ssl.AuthenticateAsServerAsync(_credentials.ServerOptions(NodeCredentials.RelayProtocol, verdict), deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A foreign certificate, another relay's, none, not TLS: any node of the mesh may register, nothing else.
            registry.HandshakeRefused();
            LogRefused(logger, remote, verdict.Reason ?? ex.Message);
            await ssl.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        var name = verdict.Name!;
        await using var link = new TlsConnection(connection, ssl, carrier, _mux.CloseTimeout);
        await using var session = new YamuxSession(link, isClient: false, _mux);
        session.Start();
        RelayNode? node = null;
        var source = connection.RemoteEndPoint is System.Net.IPEndPoint { Address: var address } ? SourceKey.Of(address) : null;
        try
        {
            node = await RegisterAsync(session, name, remote).ConfigureAwait(false);
            if (node is null)
            {
                return;
            }

            if (source is not null)
            {
                // The address a node is known by: its TCP rendezvous holds may use the part of the cap strangers cannot.
                registry.SessionStarted(source);
            }

            while (await session.AcceptStreamAsync(_stopping.Token).ConfigureAwait(false) is { } stream)
            {
                _ = RelayStreamAsync(node, stream);
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down, or the node never asked to register.
        }
        finally
        {
            if (node is not null && source is not null)
            {
                registry.SessionEnded(source);
            }

            if (node is not null && node.Unregister(session))
            {
                LogUnregistered(logger, name, LinkDialer.EndReason(session));
            }
        }
    }

    /// <summary>The node's registration, the first stream of its session: null when refused.</summary>
    private async Task<RelayNode?> RegisterAsync(YamuxSession session, string name, string remote)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        deadline.CancelAfter(HandshakeTimeout);
        if (await session.AcceptStreamAsync(deadline.Token).ConfigureAwait(false) is not { } stream)
        {
            return null;
        }

        await using (stream)
        {
            var request = await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, deadline.Token).ConfigureAwait(false);
            if (request is not { Kind: TunnelRequestKind.Register } registration || registration.Node != name)
            {
                registry.NameRefused();
                LogNameRefused(logger, remote, name, request?.Node ?? "nothing");
                await AnswerAsync(stream, TunnelStatus.NotAllowed).ConfigureAwait(false);
                session.GoAway();
                return null;
            }

            var node = registry.Node(name);
            if (node.Register(session) is { } replaced)
            {
                // The node reconnected: its old session is gone or dying, and its streams with it.
                await replaced.DisposeAsync().ConfigureAwait(false);
            }

            registry.Registered();
            await AnswerAsync(stream, TunnelStatus.Connected).ConfigureAwait(false);
            LogRegistered(logger, name, remote);
            return node;
        }
    }

    /// <summary>One stream a registered node asked for; never throws.</summary>
    private async Task RelayStreamAsync(RelayNode source, YamuxStream stream)
    {
        await using (stream)
        {
            var counted = false;
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                deadline.CancelAfter(HandshakeTimeout);
                var asked = await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, deadline.Token).ConfigureAwait(false);
                if (asked is not { Kind: TunnelRequestKind.Relay or TunnelRequestKind.Punch or TunnelRequestKind.TcpPunch or TunnelRequestKind.Splice } request)
                {
                    return;
                }

                if (request.Kind == TunnelRequestKind.Splice)
                {
                    // Counted by the rendezvous, for as long as it lasts rather than this request.
                    await OfferSpliceAsync(source, stream, request).ConfigureAwait(false);
                    return;
                }

                // An introduction holds a relay task and a stream on the far node's session for up
                // to its timeout: it counts against the asker's stream limit like a relayed stream.
                counted = source.TryOpenStream();
                if (request.Kind is TunnelRequestKind.Punch or TunnelRequestKind.TcpPunch)
                {
                    await (counted ? IntroduceAsync(source, stream, request) : AnswerAsync(stream, TunnelStatus.Limited).AsTask()).ConfigureAwait(false);
                    return;
                }

                var destination = counted ? registry.Registered(request.Node) : null;
                YamuxStream? farStream = null;
                TunnelStatus? status = counted ? TunnelStatus.UnknownNode : TunnelStatus.Limited;
                if (destination?.Session is { } far)
                {
                    using var answer = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                    answer.CancelAfter(FarAnswerTimeout);
                    (farStream, status) = await TunnelHandshake.RequestAsync(far, new TunnelRequest(TunnelRequestKind.Relayed, source.Name, request.Target), answer.Token).ConfigureAwait(false);
                }

                if (farStream is null)
                {
                    source.StreamRefused();
                    await AnswerAsync(stream, status ?? TunnelStatus.Unreachable).ConfigureAwait(false);
                    return;
                }

                await using (farStream)
                {
                    source.StreamRelayed();
                    await AnswerAsync(stream, TunnelStatus.Connected).ConfigureAwait(false);
                    await Task.WhenAll(
                        RelayPump.RunAsync(stream, farStream, source, destination!),
                        RelayPump.RunAsync(farStream, stream, destination!, source)).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
            {
                // The stream or a session broke: the other end sees the reset.
            }
            finally
            {
                if (counted)
                {
                    source.StreamClosed();
                }
            }
        }
    }

    private static async ValueTask AnswerAsync(YamuxStream stream, TunnelStatus status)
    {
        TunnelHandshake.WriteStatus(stream.Transport.Output, status);
        await stream.Transport.Output.FlushAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 807, Level = LogLevel.Warning, Message = "Relay cannot take UDP {EndPoint} ({Error}): it relays streams but introduces no nodes for hole punching")]
    private static partial void LogNoRendezvous(ILogger logger, System.Net.EndPoint endPoint, System.Net.Sockets.SocketError error);

    [LoggerMessage(EventId = 812, Level = LogLevel.Error, Message = "Relay {Relay}: accept failed ({Reason}: {Error}); paused {PauseMs} ms before each retry ({Suppressed} more since the last such line)")]
    private static partial void LogAcceptFailed(ILogger logger, string relay, string reason, string error, double pauseMs, long suppressed);

    [LoggerMessage(EventId = 801, Level = LogLevel.Information, Message = "Relay {Relay} accepting nodes on {EndPoint}")]
    private static partial void LogListening(ILogger logger, string relay, System.Net.EndPoint endPoint);

    [LoggerMessage(EventId = 802, Level = LogLevel.Information, Message = "Node {Node} registered from {Remote}")]
    private static partial void LogRegistered(ILogger logger, string node, string remote);

    [LoggerMessage(EventId = 803, Level = LogLevel.Information, Message = "Node {Node} unregistered ({Reason})")]
    private static partial void LogUnregistered(ILogger logger, string node, string reason);

    [LoggerMessage(EventId = 804, Level = LogLevel.Warning, Message = "Connection from {Remote} refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason);

    [LoggerMessage(EventId = 805, Level = LogLevel.Warning, Message = "Node at {Remote} with the certificate of {Name} asked to register as {Asked}; refused")]
    private static partial void LogNameRefused(ILogger logger, string remote, string name, string asked);
}
