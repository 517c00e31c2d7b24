using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Relay;
using Forwarder.Runtime;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// A TCP path between nodes behind NAT, for networks that drop UDP: TCP simultaneous open, with
/// a relay as the go-between. Each node connects to the relay from the port it will use (the
/// port is shared, SO_REUSEADDR and SO_REUSEPORT) and sends the token the relay issued it over
/// its session, so the relay sees its NAT
/// mapping and holds it; the relay introduces the nodes and tells each the other's address.
/// The far node first sends a SYN with a short TTL from its port to the dialler: it opens the far
/// NAT towards the dialler but expires before the dialler's NAT. Had it arrived there first, that
/// router would answer it with a reset, keep the flow as one of its own and hand the dialler's
/// SYN a new port; measured in the NAT lab, SYNs sent by both at full TTL never met for this
/// reason. The dialler's SYN then passes its own NAT on the way out and the far NAT as a reply;
/// the far socket, still in SYN-SENT, answers with a SYN-ACK (simultaneous open) that NAT and
/// conntrack take as the reply they expect, as it carries the very sequence number of the first
/// SYN. So the far side is that same socket, never a listener: a listener's SYN-ACK has a sequence
/// number the far NAT's conntrack has not seen, and goes out untranslated. The dialler is the TLS
/// client and the far node the TLS server, with the same certificate and name checks as any link.
/// Behind a NAT that maps each destination to a new port (symmetric) the address the relay saw
/// is not where the SYNs come from, and streams stay on the relay.
/// </summary>
internal sealed partial class TcpPunching(ConfigSource source, TcpTransportOptions options, MemoryPool<byte> pool, TimeProvider time, ForwarderMetrics metrics, ILogger<TcpPunching> logger)
{
    /// <summary>How long the dialler keeps connecting (a refused SYN is retried after <see cref="RetryDelay"/>).</summary>
    private static readonly TimeSpan ConnectWindow = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    /// <summary>The whole introduction, so a relay session that hangs cannot hold the punched link's one attempt.</summary>
    private static readonly TimeSpan IntroductionTimeout = TimeSpan.FromSeconds(15);

    /// <summary>How long one relay may take to accept this node's token connection.</summary>
    private static readonly TimeSpan TokenTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How long the far node waits for the dialler's SYN: the way back through the relay, and the dialler's whole window.</summary>
    private static readonly TimeSpan AnswerWindow = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Linux resends an unanswered SYN after 1 s, at the TTL the socket then has: by this time the
    /// far node lowers it again, so a resent SYN cannot reach the dialler's NAT before the
    /// dialler's own SYN has gone out. It is raised once the dialler's SYN has arrived, so the
    /// SYN-ACK, resent at the next timeout, gets through.
    /// </summary>
    private static readonly TimeSpan ResendGuard = TimeSpan.FromMilliseconds(800);

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    // Linux socket constants .NET has no names for: SOL_SOCKET/SO_REUSEPORT, IPPROTO_TCP/TCP_INFO
    // and the states tcpi_state (TCP_INFO's first byte) reports.
    private const int SolSocket = 1;
    private const int SoReusePort = 15;
    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;
    private const byte Established = 1;
    private const byte SynSent = 2;
    private const byte SynReceived = 3;

    /// <summary>
    /// Introductions this node answers at once, at most, and for one introduced node: each costs a
    /// socket per relay, a probe socket and <see cref="AnswerWindow"/> of polling, and a peer (or a
    /// relay) could otherwise have this node answer without end. Beyond, the introduction is
    /// refused as limited and streams stay on the relay.
    /// </summary>
    private const int MaxAnswering = 16;

    private const int MaxAnsweringPerPeer = 2;

    private readonly Dictionary<string, int> _answering = new(StringComparer.Ordinal);
    private int _answeringTotal;
    private Acceptor? _acceptor;

    /// <summary>Serves the links punched to this node (the node link listener does, as for links it accepts), until <paramref name="stopping"/>; none: it answers no introductions.</summary>
    public void Attach(Func<ConnectionContext, string, Task> serve, CancellationToken stopping) => Volatile.Write(ref _acceptor, new Acceptor(serve, stopping));

    /// <summary>Stops answering introductions, before the listener serving the links stops.</summary>
    public void Detach() => Volatile.Write(ref _acceptor, null);

    /// <summary>Has a relay introduce this node to <paramref name="peer"/> and opens a TCP link to it by simultaneous open.</summary>
    /// <exception cref="Exception">No relay introduced the nodes, no connection came through both NATs, or TLS failed.</exception>
    public async Task<ILinkSession> DialAsync(RelayLinks relays, PeerConfig peer, NodeCredentials credentials, YamuxOptions mux, CancellationToken cancellationToken)
    {
        var peerMetrics = metrics.Peer(peer.Name);
        peerMetrics.PunchAttempted(LinkPath.PunchedTcp);
        var held = new List<Socket>();
        try
        {
            var port = 0;
            IPEndPoint far;
            using (var introduction = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                introduction.CancelAfter(IntroductionTimeout);
                far = RelayRendezvous.Unmapped(await relays.IntroduceAsync(peer.Name, TunnelRequestKind.TcpPunch, async (relay, token) =>
                {
                    var hello = RelayRendezvous.Message(RelayServer.TcpMagic, token) ?? throw new IOException("the relay issued a malformed token");
                    var socket = Bound(port);
                    held.Add(socket);
                    port = ((IPEndPoint)socket.LocalEndPoint!).Port;
                    await SendTokenAsync(socket, relay, hello, introduction.Token).ConfigureAwait(false);
                }, introduction.Token).ConfigureAwait(false) ?? throw new IOException("no relay could introduce the nodes over TCP"));
            }

            var connection = await ConnectAsync(port, far, cancellationToken).ConfigureAwait(false);
            var link = await LinkDialer.HandshakeAsync(connection, credentials, peer.Name, NodeCredentials.LinkProtocol, mux, cancellationToken).ConfigureAwait(false);
            peerMetrics.PunchSucceeded(LinkPath.PunchedTcp);
            LogPunched(logger, peer.Name, far.ToString(), port);
            return new YamuxLinkSession(link, LinkPath.PunchedTcp);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // A node stopping mid-attempt failed nothing: only real attempts are counted and logged.
            peerMetrics.PunchFailed(LinkPath.PunchedTcp);
            LogPunchFailed(logger, peer.Name, ex.Message);
            throw;
        }
        finally
        {
            // The relay's hold ends: the link has its own NAT mapping by now, or there is none to keep.
            foreach (var socket in held)
            {
                socket.Dispose();
            }
        }
    }

    /// <summary>
    /// Answers a relay's introduction of a node about to connect to this one: the token the relay
    /// issued this node from a fresh port to that relay, a SYN with a short TTL from that port to
    /// the node; then the connection, if the node's SYN comes, is served as a link from that node alone.
    /// </summary>
    /// <param name="relay">The relay making the introduction: the token is its own, sent to it alone.</param>
    public async Task AnswerAsync(ConnectionContext stream, TunnelRequest request, RelayAddress relay, CancellationToken cancellationToken)
    {
        var node = source.Initial.Node!;
        if (Volatile.Read(ref _acceptor) is not { } acceptor || node.Refuses(request.Node) is not null
            || !HolePunching.TryParseIntroduction(request.Target, RelayServer.TcpMagic, out var asker, out var hello) || asker.AddressFamily != AddressFamily.InterNetwork)
        {
            await AnswerAsync(stream, TunnelStatus.NotAllowed, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (!TryAnswer(request.Node))
        {
            LogAnswersLimited(logger, request.Node, MaxAnsweringPerPeer, MaxAnswering);
            await AnswerAsync(stream, TunnelStatus.Limited, cancellationToken).ConfigureAwait(false);
            return;
        }

        var held = new List<Socket>();
        Socket? probe = null;
        try
        {
            var port = 0;
            try
            {
                var address = RelayRendezvous.Unmapped(await QuicLinkDialer.ResolveAsync(relay.EndPoint, cancellationToken).ConfigureAwait(false));
                var socket = Bound(port);
                held.Add(socket);
                port = ((IPEndPoint)socket.LocalEndPoint!).Port;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TokenTimeout);
                await SendTokenAsync(socket, address, hello, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // The relay answers the dialler for want of the token; the probe costs nothing.
                LogTokenNotSent(logger, relay.Name, ex.Message);
            }

            probe = Bound(port);
            Probe(probe, asker, node.PunchTtl);
        }
        catch (SocketException ex)
        {
            // An address this node cannot send to (no route), or no port to be had: nothing to open.
            LogProbeFailed(logger, request.Node, asker.ToString(), ex.SocketErrorCode);
            Dispose(probe, held);
            Answered(request.Node);
            await AnswerAsync(stream, TunnelStatus.Unreachable, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch
        {
            Dispose(probe, held);
            Answered(request.Node);
            throw;
        }

        LogIntroduced(logger, request.Node, asker.ToString(), node.PunchTtl);
        _ = CompleteAsync(probe, held, request.Node, asker, node.PunchTtl, acceptor);
        await AnswerAsync(stream, TunnelStatus.Connected, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits for the introduced node's SYN on the probe's socket and serves the connection as its link; never throws.</summary>
    private async Task CompleteAsync(Socket probe, List<Socket> held, string peer, IPEndPoint asker, int ttl, Acceptor acceptor)
    {
        var established = false;
        try
        {
            established = await EstablishedAsync(probe, ttl, acceptor.Stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Stopping, or the socket is gone: no link.
        }
        finally
        {
            Dispose(established ? null : probe, held);
            Answered(peer);
        }

        if (!established)
        {
            LogNoConnection(logger, peer, asker.ToString(), AnswerWindow);
            return;
        }

        _ = probe.Connected; // the non-blocking connect is done: the socket takes note
        LogAnswered(logger, peer, asker.ToString());
        await acceptor.Serve(new TcpConnection(probe, pool, options), peer).ConfigureAwait(false);
    }

    /// <summary>Counts an introduction this node answers; false (nothing counted) when the peer or the node is at its limit.</summary>
    private bool TryAnswer(string peer)
    {
        lock (_answering)
        {
            var answering = _answering.GetValueOrDefault(peer);
            if (answering >= MaxAnsweringPerPeer || _answeringTotal >= MaxAnswering)
            {
                return false;
            }

            _answering[peer] = answering + 1;
            _answeringTotal++;
            return true;
        }
    }

    /// <summary>An introduction's probe is over (connected or not): its place is free.</summary>
    private void Answered(string peer)
    {
        lock (_answering)
        {
            _answeringTotal--;
            var left = _answering[peer] - 1;
            if (left == 0)
            {
                _answering.Remove(peer);
            }
            else
            {
                _answering[peer] = left;
            }
        }
    }

    /// <summary>
    /// Polls the probe's socket until it is connected (true), reset or past <see cref="AnswerWindow"/>
    /// (false), lowering its TTL before the SYN is resent and raising it once the dialler's SYN is in.
    /// </summary>
    private async Task<bool> EstablishedAsync(Socket socket, int ttl, CancellationToken stopping)
    {
        var usual = socket.Ttl;
        var started = time.GetTimestamp();
        var lowered = false;
        var info = new byte[8];
        while (time.GetElapsedTime(started) < AnswerWindow)
        {
            socket.GetRawSocketOption(IpProtoTcp, TcpInfo, info);
            switch (info[0])
            {
                case Established:
                    return true;
                case SynSent when !lowered && time.GetElapsedTime(started) >= ResendGuard:
                    socket.Ttl = (short)ttl;
                    lowered = true;
                    break;
                case SynReceived when lowered:
                    socket.Ttl = usual;
                    lowered = false;
                    break;
                case SynSent or SynReceived:
                    break;
                default:
                    return false; // reset: the SYN met no mapping
            }

            await Task.Delay(PollInterval, time, stopping).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>
    /// Connects from <paramref name="port"/> to <paramref name="far"/>: a SYN refused (the far NAT
    /// has no mapping yet) is sent again a moment later, within <see cref="ConnectWindow"/>.
    /// </summary>
    private async Task<ConnectionContext> ConnectAsync(int port, IPEndPoint far, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            var socket = Bound(port);
            var left = ConnectWindow - time.GetElapsedTime(started);
            try
            {
                Configure(socket);
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(left);
                await socket.ConnectAsync(far, deadline.Token).ConfigureAwait(false);
                return new TcpConnection(socket, pool, options);
            }
            catch (SocketException ex) when (left > RetryDelay && ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
            {
                socket.Dispose();
                await Task.Delay(RetryDelay, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new IOException($"no TCP connection to {far} through both NATs within {ConnectWindow.TotalSeconds} s ({attempt} SYNs)");
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new IOException($"no TCP connection to {far} through both NATs ({attempt} SYNs, the last {ex.SocketErrorCode})", ex);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    /// <summary>Sends the probe SYN at <paramref name="ttl"/> from <paramref name="socket"/> (a non-blocking connect), then puts the usual TTL back for what follows.</summary>
    private void Probe(Socket socket, IPEndPoint asker, int ttl)
    {
        Configure(socket);
        var usual = socket.Ttl;
        socket.Ttl = (short)ttl;
        socket.Blocking = false;
        try
        {
            socket.Connect(asker);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            // The SYN is out; its answer is polled for.
        }

        socket.Ttl = usual;
    }

    /// <summary>The socket options this node's TCP connections get (buffers, no-delay, the interception mark), set before the SYN.</summary>
    private void Configure(Socket socket)
    {
        TcpSocketConfigurator.Apply(socket, options);
        if (options.Mark is { } mark)
        {
            SocketMark.Set(socket, mark);
        }
    }

    private static async Task SendTokenAsync(Socket socket, IPEndPoint relay, byte[] hello, CancellationToken cancellationToken)
    {
        await socket.ConnectAsync(relay, cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(hello, SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    private static async Task AnswerAsync(ConnectionContext stream, TunnelStatus status, CancellationToken cancellationToken)
    {
        TunnelHandshake.WriteStatus(stream.Transport.Output, status);
        await stream.Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>An IPv4 TCP socket bound to <paramref name="port"/> (0: a new one) that other sockets of this node may share.</summary>
    private static Socket Bound(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void Dispose(Socket? probe, List<Socket> held)
    {
        probe?.Dispose();
        foreach (var socket in held)
        {
            socket.Dispose();
        }
    }

    private sealed record Acceptor(Func<ConnectionContext, string, Task> Serve, CancellationToken Stopping);

    [LoggerMessage(EventId = 751, Level = LogLevel.Information, Message = "Opened a TCP path to node {Peer} at {Address} by simultaneous open (from port {Port})")]
    private static partial void LogPunched(ILogger logger, string peer, string address, int port);

    [LoggerMessage(EventId = 752, Level = LogLevel.Warning, Message = "TCP simultaneous open to node {Peer} failed ({Reason}); streams stay on the relay")]
    private static partial void LogPunchFailed(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 753, Level = LogLevel.Information, Message = "A relay introduced node {Peer} (TCP {Address}), which is about to connect to this node; sent it a SYN (hop limit: {HopLimit})")]
    private static partial void LogIntroduced(ILogger logger, string peer, string address, int hopLimit);

    [LoggerMessage(EventId = 754, Level = LogLevel.Information, Message = "Node {Peer} connected from {Address} by simultaneous open")]
    private static partial void LogAnswered(ILogger logger, string peer, string address);

    [LoggerMessage(EventId = 755, Level = LogLevel.Warning, Message = "Node {Peer} (TCP {Address}) did not connect within {Window} of its introduction; its streams stay on the relay")]
    private static partial void LogNoConnection(ILogger logger, string peer, string address, TimeSpan window);

    [LoggerMessage(EventId = 756, Level = LogLevel.Warning, Message = "Could not send a TCP token to relay {Relay} ({Reason})")]
    private static partial void LogTokenNotSent(ILogger logger, string relay, string reason);

    [LoggerMessage(EventId = 758, Level = LogLevel.Warning, Message = "Refused a TCP introduction of node {Peer}: this node answers at most {PerPeer} at once per node and {Total} in all; its streams stay on the relay")]
    private static partial void LogAnswersLimited(ILogger logger, string peer, int perPeer, int total);

    [LoggerMessage(EventId = 757, Level = LogLevel.Warning, Message = "Could not send node {Peer} a SYN at TCP {Address} ({Error})")]
    private static partial void LogProbeFailed(ILogger logger, string peer, string address, SocketError error);
}
