using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Tests.Interception;

/// <summary>
/// The forwarder as a node proxy in a network namespace (see <see cref="InterceptLab"/>),
/// installing its own iptables rules: connections to service VIPs, from the node itself and from
/// a pod, reach the services' endpoints in the test process, over L4 or L7 as the service says.
/// </summary>
public sealed partial class InterceptionTests(InterceptLab lab, ITestOutputHelper output) : IClassFixture<InterceptLab>, IAsyncLifetime
{
    private readonly List<ForwarderProcess> _processes = [];
    private readonly string _folder = Directory.CreateTempSubdirectory("fw-intercept-").FullName;

    public Task InitializeAsync()
    {
        lab.ResetRules();
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            var exited = process.HasExited ? $"exited with {process.ExitCode}" : "running";
            process.Dispose();
            output.WriteLine($"--- {exited}\n{process.Output}{process.Errors}");
        }

        lab.ResetRules();
        Directory.Delete(_folder, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Vip_FromTheNodeAndFromAPod_ReachesTheServiceEndpoint()
    {
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        await StartAsync($$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(10)}}:80']
                endpoints: [{ address: {{backend.Address}} }]
            """);

        foreach (var ns in new[] { lab.Node, lab.Pod })
        {
            using var client = await ConnectAsync(ns, new IPEndPoint(InterceptLab.Vip(10), 80));
            await SocketClient.AssertEchoAsync(client, $"hello from {ns}");
        }

        Assert.Equal(2, backend.AcceptedCount);
        Assert.Equal(2, await MetricAsync("forwarder_intercept_connections_total", "result=\"served\""));
    }

    [Fact]
    public async Task TproxyMode_VipFromTheNodeAndFromAPod_ReachesTheServiceEndpoint()
    {
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        await StartAsync(
            $$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(40)}}:80']
                endpoints: [{ address: {{backend.Address}} }]
            """,
            "iptables mangle rules installed",
            intercept: "mode: tproxy");

        Assert.Contains("-j TPROXY --on-port 15001", lab.Rules("mangle"), StringComparison.Ordinal);
        foreach (var ns in new[] { lab.Node, lab.Pod })
        {
            using var client = await ConnectAsync(ns, new IPEndPoint(InterceptLab.Vip(40), 80));
            await SocketClient.AssertEchoAsync(client, $"tproxied from {ns}");
        }

        Assert.Equal(2, backend.AcceptedCount);
        Assert.Equal(2, await MetricAsync("forwarder_intercept_connections_total", "result=\"served\""));
    }

    [Fact]
    public async Task Ipv6Vip_IsCaughtByIp6tables_AndServed()
    {
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        var vip = InterceptLab.VipV6(0x10);
        await StartAsync($$"""
            services:
              echo:
                vips: ['[{{vip}}]:80']
                endpoints: [{ address: {{backend.Address}} }]
            """, "ip6tables nat rules installed");

        Assert.Contains($"-A FORWARDER-OUTPUT -d {vip}/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports {InterceptLab.InterceptPort}", lab.Rules(ipv6: true), StringComparison.Ordinal);
        foreach (var ns in new[] { lab.Node, lab.Pod })
        {
            using var client = await ConnectAsync(ns, new IPEndPoint(vip, 80));
            await SocketClient.AssertEchoAsync(client, "over IPv6");
        }

        Assert.Equal(2, backend.AcceptedCount);
    }

    [Fact]
    public async Task HttpVips_GoThroughTheL7Path_RoutesByPathAndBalancesEachRequest()
    {
        await using var a = HttpTestBackend.Text("from a", address: lab.HostAddress);
        await using var b = HttpTestBackend.Text("from b", address: lab.HostAddress);
        await StartAsync($$"""
            listeners:
              - name: web
                listen: 127.0.0.1:0
                protocol: http
                vips: ['{{InterceptLab.Vip(20)}}:80']
                routes:
                  - { name: a, match: { path: { prefix: /a } }, service: sa }
                  - { name: b, match: { path: { prefix: /b } }, service: sb }
            services:
              sa:
                endpoints: [{ address: {{a.Address}} }]
              sb:
                endpoints: [{ address: {{b.Address}} }]
              both:
                appProtocol: http
                vips: ['{{InterceptLab.Vip(21)}}:80']
                lb: { policy: round_robin }
                endpoints: [{ address: {{a.Address}} }, { address: {{b.Address}} }]
            """);

        // Routes by path, per request, on one connection.
        using (var client = await ConnectAsync(lab.Pod, new IPEndPoint(InterceptLab.Vip(20), 80)))
        {
            var reader = new SocketReader(client);
            Assert.Equal("from a", await GetAsync(client, reader, "/a/1"));
            Assert.Equal("from b", await GetAsync(client, reader, "/b/1"));
            Assert.Equal("/a/1", a.Requests.Single().RequestLine.Split(' ')[1]);
        }

        // appProtocol http: each request of one connection is balanced on its own, which L4 could not do.
        using (var client = await ConnectAsync(lab.Node, new IPEndPoint(InterceptLab.Vip(21), 80)))
        {
            var reader = new SocketReader(client);
            string[] bodies = [await GetAsync(client, reader, "/x"), await GetAsync(client, reader, "/y")];
            Assert.Equal(["from a", "from b"], bodies.Order());
        }
    }

    [Fact]
    public async Task UnknownVipInTheCaptureRange_IsResetAndCounted_NeverDialled()
    {
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        await StartAsync(
            $$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(10)}}:80']
                endpoints: [{ address: {{backend.Address}} }]
            """,
            intercept: $"capture: ['{InterceptLab.VipRange}']");

        var reset = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            // The reset may come before the connect returns, or after.
            using var client = await ConnectAsync(lab.Node, new IPEndPoint(InterceptLab.Vip(99), 80));
            await SocketClient.ReceiveToEndAsync(client);
        });
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        Assert.Equal(1, await MetricAsync("forwarder_intercept_connections_total", "result=\"unknown_destination\""));
        Assert.Equal(0, await MetricAsync("forwarder_intercept_connections_total", "result=\"served\""));
        Assert.Equal(0, backend.AcceptedCount);

        // Straight to the intercept port: nothing redirected it, so it has no destination either.
        try
        {
            using var direct = await ConnectAsync(lab.Node, new IPEndPoint(IPAddress.Loopback, InterceptLab.InterceptPort));
            Assert.True(await SocketClient.ClosedAsync(direct));
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Reset before the connect returned.
        }

        Assert.Equal(1, await MetricAsync("forwarder_intercept_connections_total", "result=\"not_redirected\""));
    }

    [Fact]
    public async Task EndpointAtItsOwnVipAddress_TheProxysUpstreamIsNotCaughtAgain()
    {
        // The VIP is the endpoint's own address: without the mark on its upstream socket, the
        // forwarder's connection to the endpoint would be redirected back to itself, endlessly.
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        await StartAsync($$"""
            services:
              echo:
                vips: ['{{backend.Address}}']
                endpoints: [{ address: {{backend.Address}} }]
            """);

        using var client = await ConnectAsync(lab.Node, backend.EndPoint);
        await SocketClient.AssertEchoAsync(client, "no loop");
        Assert.Equal(1, backend.AcceptedCount);
        Assert.Equal(1, await MetricAsync("forwarder_intercept_connections_total", "result=\"served\""));
    }

    [Fact]
    public async Task Rules_AreRemovedExactlyOnSigterm_AndRecreatedOnceAfterASigkill()
    {
        InterceptLab.Exec(lab.Node, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "198.19.97.1/32", "-p", "tcp", "-j", "RETURN");
        var before = lab.Rules();
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        var config = $$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(10)}}:80']
                endpoints: [{ address: {{backend.Address}} }]
            """;
        var first = await StartAsync(config);
        first.Signal(9);
        await first.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains("-j FORWARDER-OUTPUT", lab.Rules(), StringComparison.Ordinal);

        // A restart after the crash refills its chains and adds no second jump.
        var second = await StartAsync(config);
        var rules = lab.Rules();
        Assert.Single(Regex.Matches(rules, "-A OUTPUT -p tcp -j FORWARDER-OUTPUT"));
        Assert.Single(Regex.Matches(rules, "-A PREROUTING -p tcp -j FORWARDER-PREROUTING"));
        Assert.Single(rules.Split('\n'), l => l == $"-A FORWARDER-OUTPUT -d {InterceptLab.Vip(10)}/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports {InterceptLab.InterceptPort}");
        using (var client = await ConnectAsync(lab.Node, new IPEndPoint(InterceptLab.Vip(10), 80)))
        {
            await SocketClient.AssertEchoAsync(client, "after the restart");
        }

        second.Signal(15);
        await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, second.ExitCode);
        Assert.Equal(before, lab.Rules());
    }

    [Fact]
    public async Task Reload_AVipAdded_IsCaughtWithoutARestart()
    {
        await using var backend = TcpTestServer.Echo(lab.HostAddress);
        var process = await StartAsync($$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(10)}}:80']
                endpoints: [{ address: {{backend.Address}} }]
            """);

        // SIGHUP before its handler is in place would end the process.
        await process.WaitForOutputAsync("SIGHUP also reloads");
        await File.WriteAllTextAsync(Path.Combine(_folder, "forwarder.yaml"), Config($$"""
            services:
              echo:
                vips: ['{{InterceptLab.Vip(10)}}:80', '{{InterceptLab.Vip(11)}}:8080']
                endpoints: [{ address: {{backend.Address}} }]
            """, null));
        process.Signal(1);
        await Eventually.TrueAsync(() => lab.Rules().Contains("198.19.96.11/32", StringComparison.Ordinal), "the reload adds the new VIP's rules");
        using var client = await ConnectAsync(lab.Pod, new IPEndPoint(InterceptLab.Vip(11), 8080));
        await SocketClient.AssertEchoAsync(client, "new vip");
    }

    private static async Task<Socket> ConnectAsync(string ns, IPEndPoint destination)
    {
        var socket = InterceptLab.SocketIn(ns, destination.AddressFamily);
        try
        {
            using var timeout = new CancellationTokenSource(SocketClient.ReadTimeout);
            await socket.ConnectAsync(destination, timeout.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<string> GetAsync(Socket client, SocketReader reader, string path)
    {
        await client.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: svc\r\n\r\n"), SocketFlags.None);
        var head = await reader.ReadHeadAsync() ?? throw new EndOfStreamException("no response");
        Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
        return Encoding.UTF8.GetString(await reader.ReadBodyAsync(head) ?? []);
    }

    private string Config(string body, string? intercept)
        => $"admin: {{ listen: {lab.NodeAddress}:{InterceptLab.AdminPort} }}\nintercept: {{ listen: \"[::]:{InterceptLab.InterceptPort}\"{(intercept is null ? string.Empty : ", " + intercept)} }}\n"
            + (body.Contains("listeners:", StringComparison.Ordinal) ? string.Empty : "listeners: []\n") + body + "\n";

    private async Task<ForwarderProcess> StartAsync(string body, string installed = "iptables nat rules installed", string? intercept = null)
    {
        var path = Path.Combine(_folder, "forwarder.yaml");
        await File.WriteAllTextAsync(path, Config(body, intercept));
        var process = ForwarderProcess.StartIn(lab.Node, "--config", path);
        _processes.Add(process);
        await process.WaitForOutputAsync(installed);
        await Eventually.TrueAsync(ReadyAsync, "the forwarder is ready");
        return process;
    }

    private async Task<bool> ReadyAsync()
    {
        try
        {
            using var http = new HttpClient();
            return (await http.GetAsync(new Uri($"http://{lab.NodeAddress}:{InterceptLab.AdminPort}/readyz"))).IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private async Task<long> MetricAsync(string name, string labels)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri($"http://{lab.NodeAddress}:{InterceptLab.AdminPort}/metrics"));
        var series = labels.Length == 0 ? $"{name} " : $"{name}{{{labels}}} ";
        var line = text.Split('\n').SingleOrDefault(l => l.StartsWith(series, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"no {name}{{{labels}}} in:\n{text}");
        return long.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }
}
