using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// How this node reaches endpoints on other nodes. Directly where it can: one long-lived link per
/// peer and transport (<c>node.transport</c>: a QUIC connection, or TLS 1.3 over TCP with a yamux
/// session on it; auto tries QUIC first, then TCP), opened when a stream is first needed, shared
/// by every stream to that peer. Through a relay where it cannot: the peer has no address, the
/// link failed (it is then dialled again in the background with a growing pause, and streams
/// go direct again once it is back), or the link broke under a stream's request. A stream asks
/// the far node to connect to a target and carries the connection once that node says it is made.
/// A stream that finds no link up starts the ways one after another, each next one when those
/// before it failed or had <see cref="Stagger"/> to try (happy eyeballs), and takes the first that
/// comes up within one <see cref="DirectBudget"/> for them all. Where a peer opened a QUIC link
/// to this node that the two share (<see cref="QuicLinkTable"/>), streams take that link first, and
/// this node's own QUIC links to the peer drain.
/// </summary>
internal sealed partial class NodeLinks : IAsyncDisposable
{
    /// <summary>How long a peer's first stream waits for the direct ways (all of them) before settling for a relay.</summary>
    private static readonly TimeSpan DirectBudget = TimeSpan.FromSeconds(2);

    /// <summary>How long one way tries alone before the next starts beside it: a handshake on a working path takes far less.</summary>
    private static readonly TimeSpan Stagger = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// A link that ends sooner than this after its handshake counts as one that failed to open:
    /// under TLS 1.3 the far end refuses this node's certificate (or name) only after this side's
    /// handshake is done, and such a link must be retried after the growing pause, not at once.
    /// </summary>
    private static readonly TimeSpan RefusedWithin = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How many keep-alive intervals a replaced QUIC link may drain for (2 minutes at the default)
    /// before the streams left on it are reset: long-lived streams (ssh, a database session) would
    /// otherwise pin it and its socket for as long as they live.
    /// </summary>
    private const int DrainKeepAlives = 8;

    private readonly ConfigSource _source;
    private readonly TcpConnectionFactory _tcp;
    private readonly RelayLinks _relays;
    private readonly HolePunching _punching;
    private readonly TcpPunching _tcpPunching;
    private readonly SplicedRelayLinks _spliced;
    private readonly QuicLinkTable _shared;
    private readonly MemoryPool<byte> _pool;
    private readonly TimeProvider _time;
    private readonly ForwarderMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PeerLink[]> _links = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposing = new();
    private NodeCredentials? _credentials;

    public NodeLinks(ConfigSource source, TcpConnectionFactory tcp, RelayLinks relays, HolePunching punching, TcpPunching tcpPunching, SplicedRelayLinks spliced, QuicLinkTable shared, MemoryPool<byte> pool, TimeProvider time, ForwarderMetrics metrics, ILogger<NodeLinks> logger)
    {
        (_source, _tcp, _relays, _punching, _tcpPunching, _spliced, _shared, _pool, _time, _metrics, _logger) = (source, tcp, relays, punching, tcpPunching, spliced, shared, pool, time, metrics, logger);
        _shared.Won += (peer, _) => DrainOwnQuicLinks(peer);
    }

    /// <summary>Opens a stream to <paramref name="endpoint"/>'s target, over a link to its node or through a relay.</summary>
    /// <exception cref="SocketException">No way got through, or the far node's connect failed, with the error a local connect would give.</exception>
    public async ValueTask<ConnectionContext> ConnectAsync(NodeEndPoint endpoint, CancellationToken cancellationToken)
    {
        var links = Links(endpoint.Node, out var transport);
        var request = new TunnelRequest(TunnelRequestKind.Connect, string.Empty, endpoint.Target);

        // A link that broke under the request stays open until its PeerLink sees it end: the
        // retry skips it for the other links, or the relay, as the way after a failed one.
        List<ILinkSession>? broken = null;
        for (var tries = 0; tries <= links.Length; tries++)
        {
            var shared = transport == NodeTransport.Tcp ? null : _shared.SharedFrom(endpoint.Node);
            var session = shared is not null && broken?.Contains(shared) != true
                ? shared
                : await DirectSessionAsync(links, broken, cancellationToken).ConfigureAwait(false);
            if (session is null || broken?.Contains(session) == true)
            {
                break;
            }

            var (stream, status) = await session.RequestAsync(request, cancellationToken).ConfigureAwait(false);
            if (stream is not null)
            {
                return Opened(stream, endpoint.Node, session.Path);
            }

            if (status is not null)
            {
                throw new SocketException((int)TunnelHandshake.ToSocketError(status));
            }

            (broken ??= []).Add(session);
        }

        if (!_relays.Configured)
        {
            throw new SocketException((int)SocketError.HostUnreachable);
        }

        return Opened(await _relays.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false), endpoint.Node, LinkPath.Relay);
    }

    public async ValueTask DisposeAsync()
    {
        await _disposing.CancelAsync().ConfigureAwait(false);
        PeerLink[] links;
        lock (_links)
        {
            links = [.. _links.Values.SelectMany(l => l)];
            _links.Clear();
        }

        // Each link's close may take its close timeout: together, shutdown waits for one, not the sum.
        await Task.WhenAll(links.Select(link => link.DisposeAsync().AsTask())).ConfigureAwait(false);

        _credentials?.Dispose();
        _disposing.Dispose();
    }

    /// <summary>
    /// A session to use for a stream now: an open one in the links' order, else the first to come up
    /// of the attempts started (staggered) within <see cref="DirectBudget"/>; null to take the relay.
    /// Links that failed before are started but not waited for, unless no relay comes after them;
    /// sessions in <paramref name="broken"/> failed under this stream's request and are passed over.
    /// </summary>
    private async ValueTask<ILinkSession?> DirectSessionAsync(PeerLink[] links, List<ILinkSession>? broken, CancellationToken cancellationToken)
    {
        foreach (var link in links)
        {
            if (link.Session is { Draining: false } open && broken?.Contains(open) != true)
            {
                return open;
            }
        }

        var deadline = After(DirectBudget);
        List<Task<ILinkSession?>> pending = [];
        for (var i = 0; i < links.Length; i++)
        {
            if (links[i].Attempt() is not { } attempt)
            {
                continue;
            }

            if (links[i].Degraded && _relays.Configured)
            {
                // Failed before: this stream goes another way, later ones this way once the attempt succeeds.
                if (attempt.IsCompletedSuccessfully && attempt.Result is { } ready)
                {
                    return ready;
                }

                continue;
            }

            pending.Add(attempt);
            if (await FirstSessionAsync(pending, Math.Min(deadline, After(Stagger)), cancellationToken).ConfigureAwait(false) is { } session)
            {
                return session;
            }
        }

        // The rest of the budget for whatever is still trying; without a relay nothing comes after
        // the links, so their attempts are waited for however long they take.
        return await FirstSessionAsync(pending, _relays.Configured ? deadline : long.MaxValue, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The first session <paramref name="pending"/> yields by <paramref name="until"/> (a timestamp), dropping failed attempts from it; null if none.</summary>
    private async Task<ILinkSession?> FirstSessionAsync(List<Task<ILinkSession?>> pending, long until, CancellationToken cancellationToken)
    {
        while (true)
        {
            for (var i = 0; i < pending.Count;)
            {
                if (!pending[i].IsCompleted)
                {
                    i++;
                }
                else if (pending[i].Result is { } session)
                {
                    return session; // the earliest in the links' order of those up
                }
                else
                {
                    pending.RemoveAt(i);
                }
            }

            var left = until == long.MaxValue ? Timeout.InfiniteTimeSpan : _time.GetElapsedTime(_time.GetTimestamp(), until);
            if (pending.Count == 0 || (left != Timeout.InfiniteTimeSpan && left <= TimeSpan.Zero))
            {
                return null;
            }

            try
            {
                await Task.WhenAny(pending).WaitAsync(left, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return null;
            }
        }
    }

    /// <summary>The timestamp <paramref name="span"/> from now.</summary>
    private long After(TimeSpan span) => _time.GetTimestamp() + (long)(span.TotalSeconds * _time.TimestampFrequency);

    private ConnectionContext Opened(ConnectionContext stream, string node, LinkPath path)
    {
        var peer = _metrics.Peer(node);
        peer.StreamOpened(outbound: true, path);
        stream.ConnectionClosed.UnsafeRegister(static state => ((PeerMetrics)state!).StreamClosed(), peer);
        return stream;
    }

    /// <summary>
    /// A peer's link that the two nodes share came up: this node's own QUIC links to it take no new
    /// streams and close once those on them are done.
    /// </summary>
    private void DrainOwnQuicLinks(string peer)
    {
        PeerLink[]? links;
        lock (_links)
        {
            _links.TryGetValue(peer, out links);
        }

        foreach (var link in links ?? [])
        {
            link.Drain();
        }
    }

    /// <summary>The direct links to <paramref name="node"/>, in the order streams try them (none when it has no address), and the transport the config sets for it.</summary>
    private PeerLink[] Links(string node, out NodeTransport transport)
    {
        var config = _source.Initial.Node ?? throw new SocketException((int)SocketError.HostUnreachable);
        var peer = config.Peer(node) ?? throw new SocketException((int)SocketError.HostUnreachable);
        transport = config.TransportTo(peer);
        lock (_links)
        {
            if (_links.TryGetValue(node, out var links))
            {
                return links;
            }

            _credentials ??= new NodeCredentials(config, _logger);
            var options = LinkDialer.Options(config.KeepAlive, _pool);
            var serve = _shared.ServerFor(peer.Name, _disposing.Token);
            PeerLink Over(LinkPath path) => new(peer, path, this, path == LinkPath.DirectQuic ? DialQuicAsync : ct => DialTcpAsync(options, ct));
            async Task<ILinkSession> DialQuicAsync(CancellationToken ct) => await QuicLinkDialer.DialAsync(peer.EndPoint!, _credentials!, peer.Name, config.KeepAlive, serve, ct).ConfigureAwait(false);
            async Task<ILinkSession> DialTcpAsync(Transports.Mux.YamuxOptions yamux, CancellationToken ct)
                => new YamuxLinkSession(await LinkDialer.DialAsync(_tcp, peer.EndPoint!, _credentials!, peer.Name, NodeCredentials.LinkProtocol, yamux, ct).ConfigureAwait(false));

            PeerLink[] direct = peer.EndPoint is null ? [] : transport switch
            {
                NodeTransport.Quic => [Over(LinkPath.DirectQuic)],
                NodeTransport.Auto => [Over(LinkPath.DirectQuic), Over(LinkPath.DirectTcp)],
                _ => [Over(LinkPath.DirectTcp)],
            };

            // Last before the relay itself: a QUIC link through holes the relay helps punch.
            PeerLink[] punched = transport != NodeTransport.Tcp && _relays.Configured
                ? [new(peer, LinkPath.DirectQuic, this, ct => _punching.DialAsync(_relays, peer, _credentials!, serve, ct))]
                : [];
            // Then, under auto, TCP by simultaneous open: for networks that drop UDP.
            PeerLink[] punchedTcp = transport == NodeTransport.Auto && _relays.Configured
                ? [new(peer, LinkPath.PunchedTcp, this, ct => _tcpPunching.DialAsync(_relays, peer, _credentials!, options, ct))]
                : [];

            // Then a TLS link like a direct one over TCP connections a relay splices; where no relay
            // or the peer agrees, it fails and streams take the terminating relay after it.
            PeerLink[] spliced = config.RelayMode == RelayMode.Splice && _relays.Configured
                ? [new(peer, LinkPath.RelaySpliced, this, async ct => await _spliced.DialAsync(_relays, peer, _credentials!, options, ct).ConfigureAwait(false))]
                : [];
            links = [.. direct, .. punched, .. punchedTcp, .. spliced];
            _links[node] = links;
            return links;
        }
    }

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "Link to node {Peer} at {Address} is up ({Path})")]
    private static partial void LogLinkUp(ILogger logger, string peer, string? address, LinkPath path);

    [LoggerMessage(EventId = 702, Level = LogLevel.Warning, Message = "Link to node {Peer} at {Address} ({Path}) failed ({Reason}); next attempt in {Backoff}")]
    private static partial void LogLinkFailed(ILogger logger, string peer, string? address, LinkPath path, string reason, TimeSpan backoff);

    [LoggerMessage(EventId = 703, Level = LogLevel.Information, Message = "Link to node {Peer} ({Path}) went down ({Reason}); it is opened again when a stream needs it")]
    private static partial void LogLinkDown(ILogger logger, string peer, LinkPath path, string reason);

    [LoggerMessage(EventId = 704, Level = LogLevel.Information, Message = "Link to node {Peer} ({Path}) drains: the link {Peer} opened to this node replaces it (streams still on it after {Deadline} are reset)")]
    private static partial void LogLinkDraining(ILogger logger, string peer, LinkPath path, TimeSpan deadline);

    [LoggerMessage(EventId = 705, Level = LogLevel.Warning, Message = "Link to node {Peer} ({Path}) reset {Streams} stream(s) still on it when its drain ran out ({Reason})")]
    private static partial void LogDrainCut(ILogger logger, string peer, LinkPath path, int streams, string reason);

    [LoggerMessage(EventId = 706, Level = LogLevel.Warning, Message = "Link with node {Peer} ({Path}) aborted: after it ended, the peer did not take the rest within {Timeout}, and what was still queued for it was dropped")]
    internal static partial void LogOutputCut(ILogger logger, string peer, LinkPath path, TimeSpan timeout);
}
