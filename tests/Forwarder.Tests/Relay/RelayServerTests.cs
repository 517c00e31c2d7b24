using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The relay server with real nodes in this process: nodes with no address for each other reach
/// one another through it; it accepts only mesh certificates and only a node's own name; it
/// holds each node to its stream and bandwidth limits, and says so on /metrics.
/// </summary>
public sealed partial class RelayServerTests : IDisposable
{
    private readonly TestMesh _mesh = new();

    public void Dispose() => _mesh.Dispose();

    [Fact]
    public async Task NodesWithNoAddressForEachOther_ReachEachOther_ThroughTheRelay()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "hello through the relay");
            await SocketClient.AssertEchoAsync(client, new string('r', 500_000));
            client.Shutdown(SocketShutdown.Send);
            Assert.True(await SocketClient.ClosedAsync(client), "the FIN went through the relay and back");
        }

        var a = relay.Registry.Node("edge-a");
        Assert.Equal((1, 0), (a.StreamsOpened, a.StreamsRefused));
        Assert.True(a.BytesFrom >= 500_000 && relay.Registry.Node("edge-b").BytesFrom >= 500_000);
        Assert.Equal((1, 1), (nodeA.Metrics.Peer("edge-b").StreamsOut, nodeA.Metrics.Peer("edge-b").StreamsOutRelayed));
        Assert.Equal(1, nodeB.Metrics.Peer("edge-a").StreamsInRelayed);
        await Eventually.TrueAsync(() => a.StreamsActive == 0 && nodeA.Metrics.Peer("edge-b").StreamsActive == 0, "the closed stream is released everywhere");

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
        Assert.Contains("forwarder_relay_nodes_registered 2", metrics, StringComparison.Ordinal);
        Assert.Contains("forwarder_relay_streams_total{node=\"edge-a\",result=\"relayed\"} 1", metrics, StringComparison.Ordinal);
        Assert.Equal("edge-a\nedge-b\n", await http.GetStringAsync(new Uri(relay.AdminAddress, "/nodes")));
        Assert.Equal((1, 1), (nodeA.Metrics.Relay("relay-1").Up, nodeA.Metrics.Relay("relay-1").Registrations));
    }

    [Fact]
    public async Task UdpPortTaken_TheRelayStillRelays()
    {
        // The hole-punching rendezvous wants the listen port over UDP; another process has it.
        using var squatter = BindUdpWhereTcpIsFree();
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, port: ((System.Net.IPEndPoint)squatter.LocalEndPoint!).Port);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "relayed without a rendezvous");
    }

    /// <summary>A UDP socket on a port whose TCP twin was free a moment ago: an ephemeral UDP port's TCP twin is sometimes another test's connection (CI saw it).</summary>
    private static Socket BindUdpWhereTcpIsFree()
    {
        while (true)
        {
            var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(udp.LocalEndPoint!);
                return udp;
            }
            catch (SocketException)
            {
                udp.Dispose();
            }
        }
    }

    [Fact]
    public async Task AStreamThroughTheRelay_FromANodeNotInPeers_IsRefused()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-c", [relay]);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        Assert.Equal(1, nodeB.Metrics.Peer("edge-a").StreamsRefused(Forwarder.Metrics.StreamRefusal.Unlisted));
        Assert.Equal(1, nodeA.Metrics.Service("app").ConnectErrors(Forwarder.Metrics.ConnectFailure.Denied));
    }

    [Fact]
    public async Task ARelayCertificate_CannotRegisterAsANode()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        // Under TLS 1.3 the dialler's handshake ends before the relay has checked its certificate: the refusal ends the session.
        TunnelStatus? status;
        try
        {
            status = await RegisterAsync(relay, "relay-2", asName: "relay-2", _mesh.Directory);
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
        {
            status = null;
        }

        Assert.Null(status);
        await Eventually.TrueAsync(() => relay.Registry.RefusedHandshakes == 1, "the relay counts the refused handshake");
        Assert.Empty(relay.Registry.Nodes);
    }

    [Fact]
    public async Task ANodeRegisteringAnotherNodesName_IsRefused_AndTheRealOneIsUntouched()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await WaitRegisteredAsync(relay, nodeB);

        // edge-a's own certificate, asking to be edge-b.
        var status = await RegisterAsync(relay, "edge-a", asName: "edge-b", _mesh.Directory);
        Assert.Equal(TunnelStatus.NotAllowed, status);
        Assert.Equal(1, relay.Registry.RefusedNames);
        Assert.Equal(1, relay.Registry.Registrations);
        Assert.NotNull(relay.Registry.Registered("edge-b"));
        Assert.Null(relay.Registry.Registered("edge-a"));

        // Its own name it may have.
        Assert.Equal(TunnelStatus.Connected, await RegisterAsync(relay, "edge-a", asName: "edge-a", _mesh.Directory));
    }

    [Fact]
    public async Task ACertificateFromAnotherAuthority_IsRefusedBeforeRegistration()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await Assert.ThrowsAnyAsync<Exception>(() => RegisterAsync(relay, "edge-a", asName: "edge-a", _mesh.Foreign));
        await Eventually.TrueAsync(() => relay.Registry.RefusedHandshakes == 1, "the relay counts the refused handshake");
        Assert.Empty(relay.Registry.Nodes);
    }

    [Fact]
    public async Task ANodeAtItsStreamLimit_IsRefusedMore_UntilOneCloses()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, limits: "  limits: { streamsPerNode: 2 }");
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        using var first = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(first, "one");
        using (var second = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(second, "two");
            using var third = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            Assert.True(await SocketClient.ClosedAsync(third), "the third stream is refused");
            Assert.Equal(1, relay.Registry.Node("edge-a").StreamsRefused);
            await SocketClient.AssertEchoAsync(first, "the others carry on");
        }

        await Eventually.TrueAsync(() => relay.Registry.Node("edge-a").StreamsActive == 1, "the closed stream frees its place");
        using var fourth = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(fourth, "room again");
    }

    [Fact]
    public async Task ANodesBandwidth_IsHeldToItsLimit()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, limits: "  limits: { bandwidthPerNode: 1MiB }");
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        // 3 MiB each way at 1 MiB/s with a one-second burst cannot take less than two seconds.
        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        var payload = new byte[3 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        var clock = Stopwatch.StartNew();
        var receiving = SocketClient.ReceiveExactlyAsync(client, payload.Length);
        await client.SendAsync(payload, SocketFlags.None);
        Assert.Equal(payload, await receiving);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.8), $"3 MiB at 1 MiB/s took only {clock.Elapsed}");
        Assert.True(relay.Registry.Node("edge-a").Throttled > TimeSpan.Zero);
    }

    [Fact]
    public async Task GarbageOrAFloodOfStreams_FromOneNode_EndsOrRefusesOnlyThatNode()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);
        using var held = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(held, "open before the attacks");

        // Not yamux after the handshake: the relay ends that connection.
        using (var credentials = Credentials("edge-c", _mesh.Directory))
        {
            var connection = await Tcp().ConnectAsync(relay.EndPoint);
            await using var ssl = new System.Net.Security.SslStream(new Forwarder.Tls.DuplexPipeStream(connection.Transport), leaveInnerStreamOpen: false);
            await ssl.AuthenticateAsClientAsync(credentials.ClientOptions(relay.Name, NodeCredentials.RelayProtocol, new PeerVerdict()));
            var garbage = new byte[4096];
            Random.Shared.NextBytes(garbage);
            garbage[0] = 7;
            await ssl.WriteAsync(garbage);
            await ssl.FlushAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var buffer = new byte[1024];
            while (await ReadOrEndAsync(ssl, buffer, timeout.Token) > 0)
            {
                // What the relay sends before it closes (a go-away) is of no interest.
            }

            await connection.DisposeAsync();
        }

        // A registered node opening more streams than a session may hold: the excess is reset.
        var (session, link) = await DialAndRegisterAsync(relay, "edge-c");
        await using (link)
        await using (session)
        {
            var flood = Enumerable.Range(0, 5000).Select(_ => session.OpenStream()).ToList();
            await Eventually.TrueAsync(() => session.StreamCount <= 4096, "the relay resets the streams beyond its limit");
            foreach (var stream in flood)
            {
                await stream.DisposeAsync();
            }
        }

        await SocketClient.AssertEchoAsync(held, "untouched by either");
        using var fresh = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(fresh, "new streams still relayed");
        Assert.NotNull(relay.Registry.Registered("edge-a"));
        Assert.NotNull(relay.Registry.Registered("edge-b"));
    }

    /// <summary>Until each node knows it is registered (the relay knew first: it registers before it answers).</summary>
    private static Task WaitRegisteredAsync(RunningRelay relay, params RunningForwarder[] nodes)
        => Eventually.TrueAsync(() => nodes.All(n => n.Metrics.Relay(relay.Name).Up == 1), $"every node registered with {relay.Name}");

    private static NodeCredentials Credentials(string certificate, string folder) => new(
        certificate,
        new CertificateFiles(Path.Combine(folder, certificate + ".pem"), Path.Combine(folder, certificate + ".key")),
        Path.Combine(folder, "ca.pem"),
        NullLogger.Instance);

    private static TcpConnectionFactory Tcp() => new(new TcpTransportOptions(), new Forwarder.Transports.Memory.PinnedBlockMemoryPool(64 * 1024), splicer: null);

    private static async Task<int> ReadOrEndAsync(System.Net.Security.SslStream ssl, byte[] buffer, CancellationToken cancellationToken)
    {
        try
        {
            return await ssl.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private async Task<(Forwarder.Transports.Mux.YamuxSession Session, Microsoft.AspNetCore.Connections.ConnectionContext Link)> DialAndRegisterAsync(RunningRelay relay, string name)
    {
        using var credentials = Credentials(name, _mesh.Directory);
        var link = await LinkDialer.DialAsync(Tcp(), relay.EndPoint, credentials, relay.Name, NodeCredentials.RelayProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), CancellationToken.None);
        var (stream, status) = await TunnelHandshake.RequestAsync(link.Session, new TunnelRequest(TunnelRequestKind.Register, name, string.Empty), CancellationToken.None);
        Assert.Equal(TunnelStatus.Connected, status);
        await stream!.DisposeAsync();
        return (link.Session, link.Connection);
    }

    /// <summary>Dials the relay as a node would with <paramref name="certificate"/>'s credentials and asks to register as <paramref name="asName"/>.</summary>
    private static async Task<TunnelStatus?> RegisterAsync(RunningRelay relay, string certificate, string asName, string folder)
    {
        using var credentials = Credentials(certificate, folder);
        var link = await LinkDialer.DialAsync(Tcp(), relay.EndPoint, credentials, relay.Name, NodeCredentials.RelayProtocol, LinkDialer.Options(TimeSpan.FromSeconds(5), MemoryPool<byte>.Shared), CancellationToken.None);
        await using var connection = link.Connection;
        await using var session = link.Session;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.Register, asName, string.Empty), timeout.Token);
        if (stream is not null)
        {
            await stream.DisposeAsync();
        }

        return status;
    }
}
