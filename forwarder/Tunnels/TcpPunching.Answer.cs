using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Relay;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <content>
/// The far node's side of a TCP simultaneous open: answering a relay's introduction with the
/// token and a short-TTL SYN, then waiting for the introduced node's SYN on that same socket.
/// </content>
internal sealed partial class TcpPunching
{
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

    // Linux socket constants .NET has no names for: IPPROTO_TCP/TCP_INFO and the states
    // tcpi_state (TCP_INFO's first byte) reports.
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

    /// <summary>
    /// Answers a relay's introduction of a node about to connect to this one: the token the relay
    /// issued this node from a fresh port to that relay, a SYN with a short TTL from that port to
    /// the node; then the connection, if the node's SYN comes, is served as a link from that node alone.
    /// </summary>
    /// <param name="relay">The relay making the introduction: the token is its own, sent to it alone.</param>
    public async Task AnswerAsync(ConnectionContext stream, TunnelRequest request, RelayAddress relay, CancellationToken cancellationToken)
    {
        var node = source.Initial.Node!;
        var parsed = IntroductionTarget.TryParse(request.Target, RelayServer.TcpMagic, out var asker, out var hello, out var malformed);
        if (parsed && asker.AddressFamily != AddressFamily.InterNetwork)
        {
            (parsed, malformed) = (false, "an IPv6 address, and TCP punching is over IPv4 only");
        }

        if (!parsed)
        {
            LogMalformedIntroduction(logger, relay.Name, request.Node, malformed);
        }

        if (Volatile.Read(ref _acceptor) is not { } acceptor || node.Refuses(request.Node) is not null || !parsed)
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

    private static async Task AnswerAsync(ConnectionContext stream, TunnelStatus status, CancellationToken cancellationToken)
    {
        TunnelHandshake.WriteStatus(stream.Transport.Output, status);
        await stream.Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void Dispose(Socket? probe, List<Socket> held)
    {
        probe?.Dispose();
        foreach (var socket in held)
        {
            socket.Dispose();
        }
    }

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

    [LoggerMessage(EventId = 759, Level = LogLevel.Warning, Message = "Relay {Relay} introduced node {Peer} for TCP with a malformed target ({Reason}); refused")]
    private static partial void LogMalformedIntroduction(ILogger logger, string relay, string peer, string reason);

    [LoggerMessage(EventId = 757, Level = LogLevel.Warning, Message = "Could not send node {Peer} a SYN at TCP {Address} ({Error})")]
    private static partial void LogProbeFailed(ILogger logger, string peer, string address, SocketError error);
}
