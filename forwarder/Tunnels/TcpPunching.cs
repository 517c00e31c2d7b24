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

    // Linux socket constants .NET has no names for: SOL_SOCKET/SO_REUSEPORT.
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

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

    private sealed record Acceptor(Func<ConnectionContext, string, Task> Serve, CancellationToken Stopping);

    [LoggerMessage(EventId = 751, Level = LogLevel.Information, Message = "Opened a TCP path to node {Peer} at {Address} by simultaneous open (from port {Port})")]
    private static partial void LogPunched(ILogger logger, string peer, string address, int port);

    [LoggerMessage(EventId = 752, Level = LogLevel.Warning, Message = "TCP simultaneous open to node {Peer} failed ({Reason}); streams stay on the relay")]
    private static partial void LogPunchFailed(ILogger logger, string peer, string reason);
}
