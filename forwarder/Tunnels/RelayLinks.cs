using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// This node's sessions with its relays (<c>node.relays</c>): each is dialled out (so it works
/// from behind NAT), authenticated both ways against the mesh CA, and registered under this
/// node's name; it then carries streams to peers this node cannot link to directly, and streams
/// from peers that cannot link to it. A lost session is dialled again with a growing pause.
/// </summary>
/// <param name="serve">Serves a stream a relay (the one named) brings from another node; resolved when the first arrives, as it depends on the runtime this class is part of.</param>
internal sealed partial class RelayLinks(
    ConfigSource source,
    TcpConnectionFactory tcp,
    Func<YamuxStream, RelayAddress, CancellationToken, Task> serve,
    MemoryPool<byte> pool,
    ForwarderMetrics metrics,
    ILogger<RelayLinks> logger) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan RegistrationTimeout = TimeSpan.FromSeconds(10);

    private readonly TcpConnectionFactory _tcp = tcp;
    private readonly Func<YamuxStream, RelayAddress, CancellationToken, Task> _serve = serve;
    private readonly ForwarderMetrics _metrics = metrics;
    private readonly ILogger _logger = logger;
    private readonly CancellationTokenSource _stopping = new();
    private RelayLink[] _relays = [];
    private Task _running = Task.CompletedTask;
    private NodeCredentials? _credentials;
    private int _next;

    /// <summary>Whether this node has relays to fall back on.</summary>
    public bool Configured => source.Initial.Node is { Relays.Count: > 0 };

    /// <summary>The relays this node is registered with now, in the config's order.</summary>
    public IEnumerable<(RelayAddress Relay, YamuxSession Session)> Sessions
        => _relays.Select(r => (r.Address, r.Session)).Where(r => r.Session is not null).Select(r => (r.Address, r.Session!));

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (source.Initial.Node is not { Relays.Count: > 0 } node)
        {
            return Task.CompletedTask;
        }

        _credentials = new NodeCredentials(node, _logger);
        var options = LinkDialer.Options(node.KeepAlive, pool);
        _relays = [.. node.Relays.Select(r => new RelayLink(r, node.Name, this, options))];
        _running = Task.WhenAll(_relays.Select(r => r.RunAsync(_stopping.Token)));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _running.ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        _credentials?.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Opens a stream to <paramref name="endpoint"/> through a relay this node is registered with,
    /// starting with a different one each time; a relay that does not know the node, or whose
    /// session breaks, hands over to the next.
    /// </summary>
    /// <exception cref="SocketException">No relay got through, with the error a local connect would give.</exception>
    public async ValueTask<YamuxStream> ConnectAsync(NodeEndPoint endpoint, CancellationToken cancellationToken)
    {
        var relays = _relays;
        var start = (uint)Interlocked.Increment(ref _next);
        TunnelStatus? last = null;
        for (var i = 0; i < relays.Length; i++)
        {
            if (relays[(int)((start + i) % relays.Length)].Session is not { } session)
            {
                continue;
            }

            var request = new TunnelRequest(TunnelRequestKind.Relay, endpoint.Node, endpoint.Target);
            var (stream, status) = await TunnelHandshake.RequestAsync(session, request, cancellationToken).ConfigureAwait(false);
            if (stream is not null)
            {
                return stream;
            }

            last = status;
            if (status is not (null or TunnelStatus.UnknownNode))
            {
                break;
            }
        }

        throw new SocketException((int)TunnelHandshake.ToSocketError(last));
    }

    /// <summary>
    /// Asks a relay this node is registered with to introduce it to <paramref name="node"/> for
    /// hole punching (<paramref name="kind"/>: <see cref="TunnelRequestKind.Punch"/> over UDP,
    /// <see cref="TunnelRequestKind.TcpPunch"/> over TCP): the relay answers first with a token it
    /// issued this node, which <paramref name="announce"/> sends to the relay's port from the
    /// port the node punches from; then with the far node's address as the relay saw it.
    /// </summary>
    /// <returns>The far node's address; null when no relay could introduce the nodes.</returns>
    public async Task<IPEndPoint?> IntroduceAsync(string node, TunnelRequestKind kind, Func<IPEndPoint, string, Task> announce, CancellationToken cancellationToken)
    {
        foreach (var relay in _relays)
        {
            if (relay.Session is not { } session)
            {
                continue;
            }

            var (stream, _) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(kind, node, "-"), cancellationToken).ConfigureAwait(false);
            if (stream is null)
            {
                continue;
            }

            await using (stream)
            {
                if (await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false) is not { } token)
                {
                    continue;
                }

                await announce(await QuicLinkDialer.ResolveAsync(relay.Address.EndPoint, cancellationToken).ConfigureAwait(false), token).ConfigureAwait(false);
                if (await TunnelHandshake.ReadStatusAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false) == TunnelStatus.Connected
                    && IPEndPoint.TryParse(await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false) ?? string.Empty, out var far))
                {
                    return far;
                }
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 721, Level = LogLevel.Information, Message = "Registered with relay {Relay} at {Address}")]
    private static partial void LogRegistered(ILogger logger, string relay, string address);

    [LoggerMessage(EventId = 722, Level = LogLevel.Warning, Message = "Relay {Relay} at {Address}: {Reason}; next attempt in {Backoff}")]
    private static partial void LogFailed(ILogger logger, string relay, string address, string reason, TimeSpan backoff);

    [LoggerMessage(EventId = 723, Level = LogLevel.Warning, Message = "Session with relay {Relay} ended ({Reason}); registering again")]
    private static partial void LogLost(ILogger logger, string relay, string reason);

    /// <summary>The session with one relay, kept up for the node's lifetime.</summary>
    private sealed class RelayLink(RelayAddress relay, string self, RelayLinks owner, YamuxOptions options)
    {
        private readonly RelayLinkMetrics _metrics = owner._metrics.Relay(relay.Name);
        private YamuxSession? _session;

        public RelayAddress Address => relay;

        /// <summary>The registered session, while it is up.</summary>
        public YamuxSession? Session => Volatile.Read(ref _session) is { Completion.IsCompleted: false } session ? session : null;

        public async Task RunAsync(CancellationToken stopping)
        {
            var failures = 0;
            while (!stopping.IsCancellationRequested)
            {
                TimeSpan pause;
                try
                {
                    await RegisterAndServeAsync(stopping).ConfigureAwait(false);
                    failures = 0;
                    pause = LinkDialer.Backoff(0);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception ex)
                {
                    pause = LinkDialer.Backoff(failures++);
                    _metrics.Failed();
                    LogFailed(owner._logger, relay.Name, relay.Address, ex.Message, pause);
                }

                try
                {
                    await Task.Delay(pause, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        /// <summary>One session: dial, register, serve what the relay brings until the session ends; throws if it never registered.</summary>
        private async Task RegisterAndServeAsync(CancellationToken stopping)
        {
            var link = await LinkDialer.DialAsync(owner._tcp, relay.EndPoint, owner._credentials!, relay.Name, NodeCredentials.RelayProtocol, options, stopping).ConfigureAwait(false);
            await using var connection = link.Connection;
            await using var session = link.Session;
            using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                deadline.CancelAfter(RegistrationTimeout);
                var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.Register, self, string.Empty), deadline.Token).ConfigureAwait(false);
                if (stream is null)
                {
                    throw new IOException(status is null ? "the session ended during registration" : $"registration as '{self}' refused ({status})");
                }

                await stream.DisposeAsync().ConfigureAwait(false);
            }

            Volatile.Write(ref _session, session);
            _metrics.Registered();
            LogRegistered(owner._logger, relay.Name, relay.Address);
            try
            {
                while (await session.AcceptStreamAsync(stopping).ConfigureAwait(false) is { } incoming)
                {
                    _ = owner._serve(incoming, relay, stopping);
                }

                LogLost(owner._logger, relay.Name, LinkDialer.EndReason(session));
            }
            finally
            {
                Volatile.Write(ref _session, null);
                _metrics.Lost();
            }
        }
    }
}
