using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Relay;
using Forwarder.Runtime;
using Forwarder.Transports.Quic;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// UDP hole punching for QUIC links between nodes behind NAT, with a relay as the go-between
/// (libp2p DCUtR, Tailscale disco). The dialler asks the relay to introduce it to the far node
/// and sends the token the relay issues it from a fresh UDP socket; the far node sends the token
/// the relay issued it with the introduction from its QUIC listener's port, so the relay has seen
/// both NAT mappings, and each side learns the other's. Before answering, the far node sends probes with a short TTL: they open its own NAT
/// towards the dialler's address but die before the dialler's NAT (had one arrived there first,
/// that NAT would keep it as a connection of its own and give the dialler's packets to the far
/// node another port). The dialler's QUIC Initials then open its NAT on the way out and pass the
/// far NAT as replies to the probes. Behind a NAT that maps each destination to a new port
/// (symmetric) the address the relay saw is not the one the dialler's Initials come from, the
/// far NAT drops them, the handshake times out, and streams stay on the relay.
/// When the first round fails (the far NAT is further than <c>node.punchTtl</c> hops, say), the
/// dialler asks again from the same port; the far node, introduced to the same address again,
/// then probes without a hop limit: the dialler's NAT now takes them as replies to its Initials.
/// </summary>
internal sealed partial class HolePunching(ConfigSource source, TimeProvider time, ForwarderMetrics metrics, ILogger<HolePunching> logger)
{
    private const int Probes = 3;

    /// <summary>How long an introduction counts as the first round for the address it came from: a NAT keeps an unanswered UDP mapping about this long.</summary>
    private static readonly TimeSpan RoundWindow = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The whole introduction, so a relay session that hangs cannot hold the punched link's one attempt.</summary>
    private static readonly TimeSpan IntroductionTimeout = TimeSpan.FromSeconds(15);

    /// <summary>A datagram QUIC discards (its fixed bit is clear), so a probe reaching a QUIC socket does no harm.</summary>
    private static readonly byte[] Probe = [0x00, .. "FWPROBE"u8];

    /// <summary>At most this many first rounds are remembered: a flood of introductions forgets the oldest, costing them only the lifted limit.</summary>
    private const int MaxFirstRounds = 1024;

    /// <summary>A full send buffer is transient: the probes are retried this many times, a moment apart.</summary>
    private const int SendAttempts = 5;

    private static readonly TimeSpan SendRetryDelay = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Peers (by name and address) probed here with the hop limit, and when: a second introduction of
    /// the same peer from the same address is its second round. The queue holds them in time order,
    /// so expiry looks only at its head.
    /// </summary>
    private readonly Dictionary<(string Node, IPEndPoint Asker), long> _firstRounds = [];
    private readonly Queue<((string Node, IPEndPoint Asker) Key, long At)> _roundOrder = new();
    private QuicLinkListener? _listener;

    /// <summary>The listener whose port this node is punched through to; none: it answers no introductions.</summary>
    public void Attach(QuicLinkListener listener) => Volatile.Write(ref _listener, listener);

    /// <summary>Stops answering through <paramref name="listener"/>, before it is disposed.</summary>
    public void Detach(QuicLinkListener listener) => Interlocked.CompareExchange(ref _listener, null, listener);

    /// <summary>Punches through to <paramref name="peer"/> and opens a QUIC link over the hole: a second round from the same port if the first fails.</summary>
    /// <exception cref="Exception">No relay introduced the nodes, or the handshake through the holes failed twice.</exception>
    /// <param name="serve">Serves the streams the peer opens on the link.</param>
    public async Task<ILinkSession> DialAsync(RelayLinks relays, PeerConfig peer, NodeCredentials credentials, Func<ConnectionContext, Task> serve, CancellationToken cancellationToken)
    {
        var peerMetrics = metrics.Peer(peer.Name);
        peerMetrics.PunchAttempted(LinkPath.DirectQuic);
        try
        {
            var port = 0;
            for (var round = 1; ; round++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                var far = await IntroduceAsync(socket, port, relays, peer.Name, cancellationToken).ConfigureAwait(false);
                port = ((IPEndPoint)socket.LocalEndPoint!).Port;
                var verdict = new PeerVerdict();
                try
                {
                    var options = credentials.QuicClientOptions(peer.Name, verdict, source.Initial.Node!.KeepAlive) with { HandshakeTimeout = HandshakeTimeout };
                    var connection = await QuicConnection.ConnectAsync(socket, far, options, cancellationToken).ConfigureAwait(false);
                    peerMetrics.PunchSucceeded(LinkPath.DirectQuic);
                    LogPunched(logger, peer.Name, far.ToString(), round);
                    return new QuicLinkSession(connection, serve);
                }
                catch (Exception ex) when (round == 1 && verdict.Reason is null && !cancellationToken.IsCancellationRequested)
                {
                    LogSecondRound(logger, peer.Name, far.ToString(), ex.Message);
                }
                catch (Exception ex)
                {
                    throw new IOException($"hole punching to {far} failed ({(verdict.Reason is { } reason ? $"{peer.Name} refused: {reason}" : ex.Message)})", ex);
                }
            }
        }
        catch
        {
            peerMetrics.PunchFailed(LinkPath.DirectQuic);
            throw;
        }
    }

    /// <summary>Binds <paramref name="socket"/> to <paramref name="port"/> (0: any), sends the relay a token from it, and has the relay introduce it to <paramref name="peer"/>.</summary>
    /// <returns>The far node's UDP address; <paramref name="socket"/> is disposed when this throws.</returns>
    private static async Task<IPEndPoint> IntroduceAsync(Socket socket, int port, RelayLinks relays, string peer, CancellationToken cancellationToken)
    {
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            using var introduction = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            introduction.CancelAfter(IntroductionTimeout);
            var far = await relays.IntroduceAsync(peer, TunnelRequestKind.Punch, async (relay, token) =>
            {
                var datagram = RelayRendezvous.Message(RelayRendezvous.Magic, token) ?? throw new IOException("the relay issued a malformed token");
                for (var i = 0; i < 3; i++)
                {
                    await socket.SendToAsync(datagram, SocketFlags.None, relay, introduction.Token).ConfigureAwait(false);
                }
            }, introduction.Token).ConfigureAwait(false) ?? throw new IOException("no relay could introduce the nodes");
            return RelayRendezvous.Unmapped(far);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Answers a relay's introduction of a node about to dial this one: short-lived probes to the node, and the token that relay issued this node, sent it from the QUIC port.</summary>
    /// <param name="relay">The relay making the introduction: the token is its own, sent to it alone.</param>
    public async Task AnswerAsync(ConnectionContext stream, TunnelRequest request, RelayAddress relay, CancellationToken stopping)
    {
        var node = source.Initial.Node!;
        var parsed = IntroductionTarget.TryParse(request.Target, RelayRendezvous.Magic, out var asker, out var datagram, out var malformed);
        if (!parsed)
        {
            LogMalformedIntroduction(logger, relay.Name, request.Node, malformed);
        }

        if (Volatile.Read(ref _listener) is not { } listener || node.Refuses(request.Node) is not null || !parsed)
        {
            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.NotAllowed);
            await stream.Transport.Output.FlushAsync(stopping).ConfigureAwait(false);
            return;
        }

        var hopLimit = HopLimitFor(request.Node, asker, node.PunchTtl);
        try
        {
            for (var i = 0; i < Probes; i++)
            {
                await SendAsync(listener, Probe, asker, hopLimit, stopping).ConfigureAwait(false);
            }
        }
        catch (ObjectDisposedException)
        {
            // The node is stopping and its QUIC port is closed: nothing to punch through to.
            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Unreachable);
            await stream.Transport.Output.FlushAsync(stopping).ConfigureAwait(false);
            return;
        }
        catch (SocketException ex)
        {
            // An address this node cannot send to (another family, no route): no hole to open.
            LogProbeFailed(logger, request.Node, asker.ToString(), ex.SocketErrorCode);
            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Unreachable);
            await stream.Transport.Output.FlushAsync(stopping).ConfigureAwait(false);
            return;
        }

        try
        {
            var udp = RelayRendezvous.Unmapped(await QuicLinkDialer.ResolveAsync(relay.EndPoint, stopping).ConfigureAwait(false));
            for (var i = 0; i < 3; i++)
            {
                await SendAsync(listener, datagram, udp, null, stopping).ConfigureAwait(false);
            }
        }
        catch (SocketException ex)
        {
            LogTokenNotSent(logger, relay.Name, ex.SocketErrorCode);
            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Unreachable);
            await stream.Transport.Output.FlushAsync(stopping).ConfigureAwait(false);
            return;
        }

        TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
        await stream.Transport.Output.FlushAsync(stopping).ConfigureAwait(false);
        LogIntroduced(logger, request.Node, asker.ToString(), hopLimit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no limit");
    }

    /// <summary>
    /// The probes' hop limit for <paramref name="asker"/>: <paramref name="ttl"/> in a first round;
    /// none when the same peer asks again soon from the same address after a first round here, as a
    /// dialler does whose first round failed.
    /// </summary>
    private int? HopLimitFor(string node, IPEndPoint asker, int ttl)
    {
        var now = time.GetTimestamp();
        var key = (node, asker);
        lock (_firstRounds)
        {
            while (_roundOrder.TryPeek(out var oldest) && (_roundOrder.Count > MaxFirstRounds || time.GetElapsedTime(oldest.At, now) > RoundWindow))
            {
                _roundOrder.Dequeue();
                if (_firstRounds.TryGetValue(oldest.Key, out var at) && at == oldest.At)
                {
                    _firstRounds.Remove(oldest.Key);
                }
            }

            if (_firstRounds.Remove(key))
            {
                return null;
            }

            _firstRounds[key] = now;
            _roundOrder.Enqueue((key, now));
            return ttl;
        }
    }

    /// <summary>One datagram from the QUIC port; a full send buffer is waited out briefly rather than taken for an unreachable peer.</summary>
    private async Task SendAsync(QuicLinkListener listener, byte[] datagram, IPEndPoint to, int? hopLimit, CancellationToken stopping)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                listener.Send(datagram, to, hopLimit);
                return;
            }
            catch (SocketException ex) when (attempt < SendAttempts && ex.SocketErrorCode is SocketError.WouldBlock or SocketError.NoBufferSpaceAvailable)
            {
                await Task.Delay(SendRetryDelay, time, stopping).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(EventId = 741, Level = LogLevel.Information, Message = "Punched through to node {Peer} at {Address} (round {Round})")]
    private static partial void LogPunched(ILogger logger, string peer, string address, int round);

    [LoggerMessage(EventId = 745, Level = LogLevel.Information, Message = "First punching round to node {Peer} at {Address} failed ({Reason}); asking for a second round without the probes' hop limit")]
    private static partial void LogSecondRound(ILogger logger, string peer, string address, string reason);

    [LoggerMessage(EventId = 743, Level = LogLevel.Warning, Message = "Could not probe node {Peer} at UDP {Address} for hole punching ({Error})")]
    private static partial void LogProbeFailed(ILogger logger, string peer, string address, SocketError error);

    [LoggerMessage(EventId = 746, Level = LogLevel.Warning, Message = "Relay {Relay} introduced node {Peer} with a malformed target ({Reason}); refused")]
    private static partial void LogMalformedIntroduction(ILogger logger, string relay, string peer, string reason);

    [LoggerMessage(EventId = 744, Level = LogLevel.Warning, Message = "Could not send a hole-punching token to relay {Relay} ({Error})")]
    private static partial void LogTokenNotSent(ILogger logger, string relay, SocketError error);

    [LoggerMessage(EventId = 742, Level = LogLevel.Information, Message = "A relay introduced node {Peer} (UDP {Address}), which is about to punch through to this node; probed it (hop limit: {HopLimit})")]
    private static partial void LogIntroduced(ILogger logger, string peer, string address, string hopLimit);
}
