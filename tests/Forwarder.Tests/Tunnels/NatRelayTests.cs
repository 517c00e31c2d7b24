using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// Nodes and a relay as separate processes on hosts built from network namespaces: two private
/// sites behind their own NAT and a public relay (see <see cref="NatLab"/>). A client on site A
/// calls a service whose endpoint is on site B: through the relay when there is no route
/// between the sites, direct once there is, and through the relay again for new streams when
/// the direct route is cut mid-run.
/// </summary>
[Collection(NatLabCollection.Name)]
public sealed partial class NatRelayTests(NatLabFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int FrontPort = 8080;
    private const int AdminPort = 9901;
    private const int RelayPort = 7700;

    private readonly NatLab _lab = fixture.Lab;
    private readonly TestMesh _mesh = new();
    private readonly List<ForwarderProcess> _processes = [];
    private TcpTestServer? _backend;

    public Task InitializeAsync()
    {
        _backend = TcpTestServer.Echo(IPAddress.Parse(NatLab.BackendAddress));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            var exited = process.HasExited ? $"exited with {process.ExitCode}" : "running";
            process.Dispose();
            output.WriteLine($"--- {exited}\n{process.Output}{process.Errors}");
        }

        await _backend!.DisposeAsync();
        _mesh.Dispose();
        fixture.Reset();
    }

    [Fact]
    public async Task AcrossNat_TheRelayCarries_ADirectRouteIsPreferred_AndACutRouteFailsOverToTheRelay()
    {
        StartRelay();
        StartNodeB();
        StartNodeA(_mesh.Directory);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        // No route between the sites: only the relay gets through.
        await EchoAsync("through the relay");
        Assert.Equal(1, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\""));

        // Site B opens a port to node B: new streams go direct once the link is up.
        _lab.OpenDirectRoute();
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("looking for the direct route");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-tcp\"") > 0;
            },
            "streams go direct",
            TimeSpan.FromSeconds(60));

        // Traffic runs; the direct route is cut mid-run. Every answer that came back is whole and
        // right; at most the streams in flight on the cut link fail, and new ones take the relay.
        var relayedBefore = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"");
        using var stop = new CancellationTokenSource();
        var load = RunLoadAsync(stop.Token);
        await Eventually.TrueAsync(() => load.Answered >= 20, "traffic flows direct before the cut");
        _lab.CutDirectRoute();
        var answeredAtCut = load.Answered;
        await Eventually.TrueAsync(
            () => load.Answered >= answeredAtCut + 20 && Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"") >= relayedBefore + 20,
            "traffic flows through the relay after the cut",
            TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        var result = await load.Completion;
        Assert.Equal(0, result.Wrong);
        Assert.True(result.Failed <= 2, $"{result.Failed} exchanges failed; only those in flight at the cut may");
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_links_up", "peer=\"edge-b\""));
    }

    [Fact]
    public async Task ARestartedRelay_IsRegisteredWithAgain_AndANodeWithAForeignCertificateNever()
    {
        var relay = StartRelay();
        StartNodeB();
        var nodeA = StartNodeA(_mesh.Directory);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);
        await EchoAsync("before the restart");

        Stop(relay);
        await Eventually.TrueAsync(() => Metric(_lab.NodeA, "forwarder_node_relay_up", "relay=\"relay-1\"") == 0, "node A sees the relay gone");
        StartRelay();
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);
        await EchoAsync("after the restart");

        // A node from another CA, on site A too, is refused at the handshake and never registers.
        Stop(nodeA);
        StartNodeA(_mesh.Foreign);
        await Eventually.TrueAsync(() => Metric(_lab.Relay, "forwarder_relay_registrations_total", "result=\"certificate\"", 9902) >= 1, "the relay refuses the foreign certificate", TimeSpan.FromSeconds(60));
        Assert.Equal(0, Metric(_lab.Relay, "forwarder_relay_node_up", "node=\"edge-a\"", 9902));
    }

    /// <param name="mode">relay.mode: terminate unless a test is about splicing.</param>
    private ForwarderProcess StartRelay(string mode = "terminate") => Start(_lab.Relay, "relay.yaml", $"""
        relay:
          name: relay-1
          listen: '{NatLab.RelayAddress}:{RelayPort}'
          certificate: {Path.Combine(_mesh.Directory, "relay-1.pem")}
          key: {Path.Combine(_mesh.Directory, "relay-1.key")}
          ca: {Path.Combine(_mesh.Directory, "ca.pem")}
          mode: {mode}
        admin:
          listen: '127.0.0.1:9902'
        """, "relay");

    /// <param name="port">Node B's link port: a new one per punching test, so no NAT entry left by an earlier test plays a part.</param>
    /// <param name="punchTtl">The hop limit of node B's first-round probes.</param>
    private ForwarderProcess StartNodeB(string transport = "tcp", int port = NatLab.LinkPort, int punchTtl = 2) => Start(_lab.NodeB, "edge-b.yaml", $"""
        admin:
          listen: '127.0.0.1:{AdminPort}'
        node:
          name: edge-b
          transport: {transport}
          punchTtl: {punchTtl}
          listen: '0.0.0.0:{port}'
          keepAlive: 1s
          certificate: {Path.Combine(_mesh.Directory, "edge-b.pem")}
          key: {Path.Combine(_mesh.Directory, "edge-b.key")}
          ca: {Path.Combine(_mesh.Directory, "ca.pem")}
          peers:
            - name: edge-a
          relays:
            - {"{"} name: relay-1, address: '{NatLab.RelayAddress}:{RelayPort}' {"}"}
        listeners:
          - name: unused
            listen: '127.0.0.1:0'
            protocol: echo
        services:
          app:
            export: true
            endpoints:
              - address: '{_backend!.Address}'
        """);

    /// <param name="peerAddress">Whether node B is given an address (else it is reached through the relay and punched holes only).</param>
    private ForwarderProcess StartNodeA(string certificates, string transport = "tcp", bool peerAddress = true) => Start(_lab.NodeA, "edge-a.yaml", $"""
        admin:
          listen: '127.0.0.1:{AdminPort}'
        node:
          name: edge-a
          transport: {transport}
          keepAlive: 1s
          certificate: {Path.Combine(certificates, "edge-a.pem")}
          key: {Path.Combine(certificates, "edge-a.key")}
          ca: {Path.Combine(certificates, "ca.pem")}
          peers:
            - {(peerAddress ? $"{{ name: edge-b, address: '{NatLab.SiteBPublicAddress}:{NatLab.LinkPort}' }}" : "{ name: edge-b }")}
          relays:
            - {"{"} name: relay-1, address: '{NatLab.RelayAddress}:{RelayPort}' {"}"}
        listeners:
          - name: front
            listen: '{NatLab.NodeAClientSide}:{FrontPort}'
            service: app
        services:
          app:
            endpoints:
              - {"{"} address: '{_backend!.Address}', node: edge-b {"}"}
        """);

    private ForwarderProcess Start(string ns, string file, string yaml, string? command = null)
    {
        var path = Path.Combine(_mesh.Directory, file);
        File.WriteAllText(path, yaml);
        var process = ForwarderProcess.StartIn(ns, command is null ? ["--config", path] : [command, "--config", path]);
        _processes.Add(process);
        return process;
    }

    private void Stop(ForwarderProcess process)
    {
        process.Dispose();
        output.WriteLine(process.Output + process.Errors);
        _processes.Remove(process);
    }

    private Task WaitRegisteredAsync(params string[] nodes)
        => Eventually.TrueAsync(
            () => nodes.All(ns => Metric(ns, "forwarder_node_relay_up", "relay=\"relay-1\"") == 1),
            "the nodes registered with the relay",
            TimeSpan.FromSeconds(60));

    /// <summary>A sample from the /metrics of the process in <paramref name="ns"/>; -1 when it cannot be read (yet).</summary>
    private static long Metric(string ns, string name, string labels, int port = AdminPort)
    {
        string text;
        try
        {
            text = NatLab.Exec(ns, "curl", "-sf", "--max-time", "5", $"http://127.0.0.1:{port}/metrics");
        }
        catch (InvalidOperationException)
        {
            return -1;
        }

        var match = Regex.Match(text, $@"^{Regex.Escape(name)}\{{[^}}]*{Regex.Escape(labels)}[^}}]*\}} (\d+)$", RegexOptions.Multiline);
        return match.Success ? long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    private static async Task EchoAsync(string message)
    {
        using var client = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Parse(NatLab.NodeAClientSide), FrontPort));
        await SocketClient.AssertEchoAsync(client, message);
    }

    /// <summary>One connection after another, each sending a numbered message and checking the echo, until stopped.</summary>
    private static LoadRun RunLoadAsync(CancellationToken stop)
    {
        var run = new LoadRun();
        run.Completion = Task.Run(async () =>
        {
            var (wrong, failed) = (0, 0);
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var message = $"exchange {i} {new string('x', i % 4000)}";
                try
                {
                    using var client = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Parse(NatLab.NodeAClientSide), FrontPort));
                    await client.SendAsync(System.Text.Encoding.ASCII.GetBytes(message), SocketFlags.None);
                    var answer = System.Text.Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(client, message.Length));
                    if (answer == message)
                    {
                        run.Answer();
                    }
                    else
                    {
                        wrong++;
                    }
                }
                catch (Exception ex) when (ex is SocketException or EndOfStreamException or OperationCanceledException)
                {
                    failed++;
                }
            }

            return (wrong, failed);
        });
        return run;
    }

    private sealed class LoadRun
    {
        private int _answered;

        public int Answered => Volatile.Read(ref _answered);

        public Task<(int Wrong, int Failed)> Completion { get; set; } = null!;

        public void Answer() => Interlocked.Increment(ref _answered);
    }
}

/// <summary>One set of namespaces for the NAT tests, which run one after another on it.</summary>
public sealed class NatLabFixture : IDisposable
{
    internal NatLab Lab { get; } = new();

    /// <summary>Back to no route between the sites, for the next test.</summary>
    internal void Reset()
    {
        Lab.CloseDirectRoute();
        Lab.ResetNat();
    }

    public void Dispose() => Lab.Dispose();
}

[CollectionDefinition(Name)]
public sealed class NatLabCollection : ICollectionFixture<NatLabFixture>
{
    public const string Name = "NAT lab";
}
