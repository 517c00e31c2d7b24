using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Forwarder.Tests.Cluster;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

/// <content>
/// UDP VIPs: datagrams to them, from the node and from a pod, reach the service's endpoint, and
/// the replies come back from the VIP (conntrack undoes the REDIRECT), so clients that check the
/// source, as DNS resolvers do, take them. And health checks, which must not be caught themselves.
/// </content>
public sealed partial class InterceptionTests
{
    [Fact]
    public async Task UdpVip_FromTheNodeAndFromAPod_RepliesComeFromTheVip_OneSessionPerClient()
    {
        await using var backend = new UdpTestBackend("dns", lab.HostAddress);
        var vip = new IPEndPoint(InterceptLab.Vip(53), 53);
        await StartAsync($$"""
            services:
              dns:
                vips: ['{{vip}}/udp']
                endpoints: [{ address: {{backend.Address}} }]
            """);

        Assert.Matches($@"-A FORWARDER-OUTPUT -d {Regex.Escape(vip.Address.ToString())}/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports \d+", lab.Rules());
        using var fromNode = UdpClientIn(lab.Node, vip);
        using var fromPod = UdpClientIn(lab.Pod, vip);
        using var secondFromPod = UdpClientIn(lab.Pod, vip);
        Assert.Equal((vip, "dns:from the node"), await AskAsync(fromNode, vip, "from the node"));
        Assert.Equal((vip, "dns:from the pod"), await AskAsync(fromPod, vip, "from the pod"));
        Assert.Equal((vip, "dns:again"), await AskAsync(secondFromPod, vip, "again"));
        Assert.Equal((vip, "dns:and again"), await AskAsync(fromPod, vip, "and again"));

        // Each client address is a session with its own socket to the endpoint.
        Assert.Equal(3, backend.Peers.Count);
        Assert.Equal(3, await MetricAsync("forwarder_udp_sessions_total", $"listener=\"intercept:{vip}/udp\""));
        Assert.Equal(1, await MetricAsync("forwarder_intercept_udp_vips", string.Empty));
    }

    [Fact]
    public async Task UdpIpv6Vip_FromTheNodeAndFromAPod_RepliesComeFromTheVip()
    {
        await using var backend = new UdpTestBackend("dns6", lab.HostAddress);
        var vip = new IPEndPoint(InterceptLab.VipV6(0x53), 53);
        await StartAsync($$"""
            services:
              dns:
                vips: ['{{vip}}/udp']
                endpoints: [{ address: {{backend.Address}} }]
            """, "ip6tables nat rules installed");

        foreach (var ns in new[] { lab.Node, lab.Pod })
        {
            using var client = UdpClientIn(ns, vip);
            Assert.Equal((vip, $"dns6:{ns}"), await AskAsync(client, vip, ns));
        }
    }

    [Fact]
    public async Task TproxyMode_UdpVip_IsRedirectedInNat_BesideTheTcpTproxyRules()
    {
        await using var udpBackend = new UdpTestBackend("dns", lab.HostAddress);
        await using var tcpBackend = TcpTestServer.Echo(lab.HostAddress);
        var vip = InterceptLab.Vip(56);
        await StartAsync(
            $$"""
            services:
              dns:
                vips: ['{{vip}}:53/udp']
                endpoints: [{ address: {{udpBackend.Address}} }]
              echo:
                vips: ['{{vip}}:80']
                endpoints: [{ address: {{tcpBackend.Address}} }]
            """,
            "iptables nat rules installed",
            intercept: "mode: tproxy");

        await Eventually.TrueAsync(() => lab.Rules("mangle").Contains("-j TPROXY", StringComparison.Ordinal), "the tcp rules are in mangle");
        Assert.DoesNotContain("-p udp", lab.Rules("mangle"), StringComparison.Ordinal);
        Assert.DoesNotContain("-p tcp -m tcp", lab.Rules(), StringComparison.Ordinal);
        foreach (var ns in new[] { lab.Node, lab.Pod })
        {
            using var client = UdpClientIn(ns, new IPEndPoint(vip, 53));
            Assert.Equal((new IPEndPoint(vip, 53), $"dns:{ns}"), await AskAsync(client, new IPEndPoint(vip, 53), ns));
            using var connection = await ConnectAsync(ns, new IPEndPoint(vip, 80));
            await SocketClient.AssertEchoAsync(connection, $"tcp from {ns}");
        }
    }

    [Fact]
    public async Task Reload_UdpVipKept_KeepsItsPortAndSession_UdpVipRemoved_LosesItsRuleAndListener()
    {
        await using var backend = new UdpTestBackend("dns", lab.HostAddress);
        var (kept, added) = (new IPEndPoint(InterceptLab.Vip(53), 53), new IPEndPoint(InterceptLab.Vip(54), 53));
        var process = await StartAsync(UdpServices(backend, kept));
        await process.WaitForOutputAsync("SIGHUP also reloads");
        var port = UdpPort(kept);
        using var client = UdpClientIn(lab.Pod, kept);
        Assert.Equal((kept, "dns:before"), await AskAsync(client, kept, "before"));

        await ReloadAsync(process, UdpServices(backend, kept, added));
        await Eventually.TrueAsync(() => lab.Rules().Contains($"-d {added.Address}/32", StringComparison.Ordinal), "the reload adds the new VIP's rules");
        Assert.Equal(port, UdpPort(kept));
        Assert.Equal((kept, "dns:after"), await AskAsync(client, kept, "after"));
        Assert.Single(backend.Peers);

        await ReloadAsync(process, UdpServices(backend, added));
        await Eventually.TrueAsync(() => !lab.Rules().Contains($"-d {kept.Address}/32", StringComparison.Ordinal), "the reload removes the VIP's rules");
        await Eventually.TrueAsync(() => !InterceptLab.Exec(lab.Node, "ss", "-Huln").Contains($":{port} ", StringComparison.Ordinal), "the VIP's udp port is closed");
        using var other = UdpClientIn(lab.Pod, added);
        Assert.Equal((added, "dns:still served"), await AskAsync(other, added, "still served"));
    }

    [Fact]
    public async Task DiscoveredUdpServicePort_IsIntercepted_BesideItsTcpTwin_AndFollowsEndpointChanges()
    {
        await using var api = new FakeKubeApiServer();
        await api.StartAsync();
        await using var relay = new TcpTestServer(client => PipeAsync(client, new IPEndPoint(IPAddress.Loopback, api.Port)), address: lab.HostAddress);
        await using var a = new UdpTestBackend("A", lab.HostAddress);
        await using var b = new UdpTestBackend("B", lab.HostAddress);
        var vip = new IPEndPoint(InterceptLab.Vip(55), 53);
        var service = FakeKubeApiServer.Service("kube-system", "kube-dns", vip.Address.ToString(), ("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"));
        api.Put(service);
        api.Put(UdpSlice("dns-a", a, ready: true));

        await StartAsync($$"""
            cluster:
              kubernetes:
                apiServer: http://{{relay.Address}}
                tokenFile: /nonexistent/token
            """);
        await Eventually.TrueAsync(() => lab.Rules().Contains($"-d {vip.Address}/32 -p udp", StringComparison.Ordinal), "discovery adds the UDP ClusterIP's rules");
        Assert.Contains($"-d {vip.Address}/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports {InterceptLab.InterceptPort}", lab.Rules(), StringComparison.Ordinal);

        using var client = UdpClientIn(lab.Pod, vip);
        Assert.Equal((vip, "A:query"), await AskAsync(client, vip, "query"));

        // The endpoint moves: the session to the old one ends, and the client's next datagram goes to the new one.
        api.Put(UdpSlice("dns-a", a, ready: false));
        api.Put(UdpSlice("dns-b", b, ready: true));
        await Eventually.TrueAsync(async () => (await AskAsync(client, vip, "moved?")).Text == "B:moved?", "datagrams reach the new endpoint");

        api.Delete(service);
        await Eventually.TrueAsync(() => !lab.Rules().Contains($"-d {vip.Address}/32", StringComparison.Ordinal), "the deleted Service's rules are removed");

        System.Text.Json.Nodes.JsonObject UdpSlice(string name, UdpTestBackend backend, bool ready)
        {
            var slice = FakeKubeApiServer.Slice("kube-system", "kube-dns", name, "dns", IPEndPoint.Parse(backend.Address).Port, (lab.HostAddress.ToString(), "node-a", "zone-1", ready));
            slice["ports"]![0]!["protocol"] = "UDP";
            return slice;
        }
    }

    [Fact]
    public async Task HealthChecks_ToAnEndpointInACapturedNetwork_CarryTheMark_AndReachItDirectly()
    {
        // The capture network holds the endpoint: a check without the mark would be redirected to
        // the intercept listener, which knows no such VIP and resets it, and the endpoint would go down.
        await using var backend = HttpTestBackend.Text("ok", address: lab.HostAddress);
        await StartAsync(
            $$"""
            services:
              web:
                vips: ['{{InterceptLab.Vip(60)}}:80']
                healthCheck: { type: http, path: /healthz, interval: 200ms, timeout: 2s, unhealthyThreshold: 1 }
                endpoints: [{ address: {{backend.Address}} }]
            """,
            intercept: $"capture: ['{lab.HostAddress}/32', '{InterceptLab.VipRange}']");

        var labels = $"service=\"web\",endpoint=\"{backend.Address}\"";
        await Eventually.TrueAsync(async () => await MetricAsync("forwarder_endpoint_health_checks_total", $"{labels},result=\"passed\"") >= 3, "health checks pass");
        Assert.Equal(0, await MetricAsync("forwarder_endpoint_health_checks_total", $"{labels},result=\"failed\""));
        Assert.Equal(1, await MetricAsync("forwarder_endpoint_healthy", labels));
        Assert.Contains(backend.Requests, r => r.Header("User-Agent") == "forwarder-health-check" && r.RequestLine.StartsWith("GET /healthz ", StringComparison.Ordinal));
        Assert.Equal(0, await MetricAsync("forwarder_intercept_connections_total", "result=\"unknown_destination\""));
        Assert.Equal(0, await MetricAsync("forwarder_intercept_connections_total", "result=\"served\""));
    }

    private static Socket UdpClientIn(string ns, IPEndPoint vip)
    {
        var socket = InterceptLab.SocketIn(ns, vip.AddressFamily, SocketType.Dgram);
        socket.Bind(new IPEndPoint(vip.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0));
        return socket;
    }

    /// <summary>Sends until an answer comes (a datagram may be lost) and returns where it came from and what it said.</summary>
    private static async Task<(IPEndPoint From, string Text)> AskAsync(Socket client, IPEndPoint vip, string text)
    {
        var buffer = new byte[2048];
        var deadline = DateTime.UtcNow + Eventually.DefaultTimeout;
        while (DateTime.UtcNow < deadline)
        {
            await client.SendToAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None, vip);
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            try
            {
                var received = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(vip.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0), wait.Token);
                return ((IPEndPoint)received.RemoteEndPoint, Encoding.UTF8.GetString(buffer, 0, received.ReceivedBytes));
            }
            catch (OperationCanceledException)
            {
                // Lost, or not served yet: ask again.
            }
        }

        throw new TimeoutException($"No answer from {vip} to '{text}' within {Eventually.DefaultTimeout}.");
    }

    /// <summary>The port the rules redirect <paramref name="vip"/>'s datagrams to.</summary>
    private int UdpPort(IPEndPoint vip)
    {
        var match = Regex.Match(lab.Rules(), $@"-A FORWARDER-PREROUTING -d {Regex.Escape(vip.Address.ToString())}/32 -p udp -m udp --dport {vip.Port} -j REDIRECT --to-ports (\d+)");
        Assert.True(match.Success, lab.Rules());
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static string UdpServices(UdpTestBackend backend, params IPEndPoint[] vips) => $$"""
        services:
          dns:
            vips: [{{string.Join(", ", vips.Select(v => $"'{v}/udp'"))}}]
            endpoints: [{ address: {{backend.Address}} }]
        """;

    private async Task ReloadAsync(ForwarderProcess process, string body)
    {
        await File.WriteAllTextAsync(Path.Combine(_folder, "forwarder.yaml"), Config(body, null));
        process.Signal(1);
    }
}
