using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// Two forwarders in this process as two nodes, with certificates from <see cref="MeshAuthority"/>
/// (what <c>forwarder cert</c> makes): a tcp listener on node A reaches an endpoint hosted by
/// node B through a mutually authenticated TLS 1.3 link carrying yamux streams. B connects only
/// to endpoints it hosts; a node whose certificate is from another CA, or names another node,
/// is refused before any stream opens.
/// </summary>
public sealed partial class NodeLinkTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-nodes-").FullName;
    private readonly string _foreign;

    public NodeLinkTests()
    {
        using (var authority = MeshAuthority.OpenOrCreate(_directory, TimeSpan.FromDays(1), out _))
        {
            authority.IssueNode("edge-a", _directory, TimeSpan.FromDays(1)).Dispose();
            authority.IssueNode("edge-b", _directory, TimeSpan.FromDays(1)).Dispose();
            authority.IssueNode("edge-c", _directory, TimeSpan.FromDays(1)).Dispose();
            authority.IssueRelay("relay-1", _directory, TimeSpan.FromDays(1)).Dispose();
        }

        _foreign = Directory.CreateDirectory(Path.Combine(_directory, "foreign")).FullName;
        using var other = MeshAuthority.OpenOrCreate(_foreign, TimeSpan.FromDays(1), out _);
        other.IssueNode("edge-a", _foreign, TimeSpan.FromDays(1)).Dispose();
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AnEndpointOnAnotherNode_IsReachedThroughTheLink_BothWays_WithHalfClose()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "hello across nodes");
        await SocketClient.AssertEchoAsync(client, new string('x', 300_000));
        client.Shutdown(SocketShutdown.Send);
        Assert.True(await SocketClient.ClosedAsync(client), "the FIN went through the link and back");

        Assert.Equal(1, backend.AcceptedCount);
        Assert.Equal(1, nodeB.Metrics.Listener(NodeLinkListener.MetricsName).Total);
        var toB = nodeA.Metrics.Peer("edge-b");
        var fromA = nodeB.Metrics.Peer("edge-a");
        Assert.Equal((1, 1, 1), (toB.LinksUp, toB.LinksOpened, toB.StreamsOut));
        Assert.Equal((1, 1), (fromA.LinksUp, fromA.StreamsIn));
        await Eventually.TrueAsync(() => toB.StreamsActive == 0 && fromA.StreamsActive == 0, "the closed stream is no longer active on either node");
    }

    [Fact]
    public async Task ManyConnections_ShareOneLink()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);

        await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
        {
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"connection {i}");
        }));

        Assert.Equal(20, backend.AcceptedCount);
        Assert.Equal(20, nodeB.Metrics.Listener(NodeLinkListener.MetricsName).Total);
    }

    [Fact]
    public async Task ManyConnectionsOfBulk_AtOnce_ArriveIntactThroughOneLink()
    {
        // Above four open streams the link's writer queues data frames, and hands the large ones to TLS from their own buffers.
        const int Size = 2 * 1024 * 1024;
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);

        await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            var data = new byte[Size];
            Random.Shared.NextBytes(data);
            var echoed = SocketClient.ReceiveExactlyAsync(client, Size);
            await client.SendAsync(data, SocketFlags.None);
            var received = await echoed;
            Assert.True(data.AsSpan().SequenceEqual(received), "the echo differs from what was sent");
        }));

        Assert.Equal(16, backend.AcceptedCount);
    }

    [Fact]
    public async Task ATargetTheRemoteNodeDoesNotHost_IsRefused_AndNeverConnected()
    {
        await using var hosted = TcpTestServer.Echo();
        await using var notHosted = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(hosted.Address);

        // Node A claims node B hosts an address B's config does not list.
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), notHosted.Address);
        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, notHosted.AcceptedCount);
        Assert.True(Enum.GetValues<Forwarder.Metrics.ConnectFailure>().Sum(f => nodeA.Metrics.Service("app").ConnectErrors(f)) > 0);
    }

    [Fact]
    public async Task ANonExportedService_IsRefused_WhileAnExportedOneWorks()
    {
        await using var exported = TcpTestServer.Echo();
        await using var notExported = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(exported.Address, privateEndpoint: notExported.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), exported.Address, privateEndpoint: notExported.Address);

        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "exported");
        }

        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("private")))
        {
            Assert.True(await SocketClient.ClosedAsync(client), "the client of the service B does not export is closed");
        }

        Assert.Equal(0, notExported.AcceptedCount);
        Assert.Equal(1, nodeB.Metrics.Peer("edge-a").StreamsRefused(StreamRefusal.NotExported));
        Assert.Equal(1, nodeA.Metrics.Service("private").ConnectErrors(ConnectFailure.Denied));
        Assert.Equal(0, nodeA.Metrics.Service("app").ConnectErrors(ConnectFailure.Denied));

        Assert.Contains("forwarder_node_link_streams_refused_total{peer=\"edge-a\",reason=\"not_exported\"} 1", PrometheusText(nodeB), StringComparison.Ordinal);
        Assert.Contains("forwarder_upstream_connect_errors_total{service=\"private\",reason=\"denied\"} 1", PrometheusText(nodeA), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CertificatesMadeWithTheReadmesOpenSslCommands_LinkNodes_AndKeepTheirRoles()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_directory, "openssl")).FullName;
        await RunReadmeOpenSslAsync(folder, "node", "edge-a");
        await RunReadmeOpenSslAsync(folder, "node", "edge-b");
        await RunReadmeOpenSslAsync(folder, "relay", "relay-1");

        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, peers: "edge-a,relay-1", certificateFolder: folder);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, certificateFolder: folder);
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "openssl-made certificates");
        }

        using var relayCredentials = new NodeCredentials("relay-1", new Forwarder.Configuration.CertificateFiles(Path.Combine(folder, "relay-1.pem"), Path.Combine(folder, "relay-1.key")), Path.Combine(folder, "ca.pem"), NullLogger.Instance);
        Assert.Null(await ConnectRequestAsync(LinkEndPoint(nodeB), relayCredentials, backend.Address));
        await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(LinkRefusal.Role) == 1, "B refuses the openssl-made relay certificate as the wrong role");
    }

    [Fact]
    public async Task AnExportTakenBackByAReload_IsRefusedFromThenOn()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "exported");
        }

        Assert.True(await nodeB.ReloadAsync(NodeB(backend.Address, export: false)));
        using var refused = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(refused), "the service is no longer exported");
        Assert.Equal(1, backend.AcceptedCount);
        Assert.Equal(1, nodeB.Metrics.Peer("edge-a").StreamsRefused(StreamRefusal.NotExported));
    }

    [Fact]
    public async Task ReplacingTheCaFile_TakesEffectWithoutRestart()
    {
        // A second CA, with its own certificate for edge-a; A trusts both CAs, so it accepts B's.
        var next = Directory.CreateDirectory(Path.Combine(_directory, "next")).FullName;
        using (var authority = MeshAuthority.OpenOrCreate(next, TimeSpan.FromDays(1), out _))
        {
            authority.IssueNode("edge-a", next, TimeSpan.FromDays(1)).Dispose();
        }

        var both = Path.Combine(_directory, "both.pem");
        File.WriteAllText(both, File.ReadAllText(Path.Combine(_directory, "ca.pem")) + "\n" + File.ReadAllText(Path.Combine(next, "ca.pem")));
        var trustedByB = Path.Combine(_directory, "b-ca.pem");
        File.Copy(Path.Combine(_directory, "ca.pem"), trustedByB);

        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, authority: trustedByB);
        await using (var fromNextCa = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, certificateFolder: next, authority: both))
        {
            using (var client = await SocketClient.ConnectAsync(fromNextCa.EndPoint("front")))
            {
                Assert.True(await SocketClient.ClosedAsync(client), "B does not trust the next CA yet");
            }

            File.Copy(Path.Combine(next, "ca.pem"), trustedByB, overwrite: true);
            await Eventually.TrueAsync(
                async () =>
                {
                    using var client = await SocketClient.ConnectAsync(fromNextCa.EndPoint("front"));
                    return await EchoesAsync(client, "from the next CA");
                },
                "B accepts a certificate from the CA its file now holds",
                TimeSpan.FromSeconds(90));
        }

        await using var fromOldCa = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);
        using var refused = await SocketClient.ConnectAsync(fromOldCa.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(refused), "B no longer trusts the CA its file held before");
        await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(LinkRefusal.Certificate) >= 2, "B counts both refusals as certificates");
    }

    /// <summary>Runs the README's openssl block for <paramref name="role"/> <paramref name="name"/> in <paramref name="folder"/> (the CA is made by the first run).</summary>
    private static async Task RunReadmeOpenSslAsync(string folder, string role, string name)
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(Forwarder.Tests.Configuration.ConfigLoaderTests.RepositoryRoot(), "README.md"));
        const string Marker = "<!-- mesh-certificates -->\n```sh\n";
        var from = readme.IndexOf(Marker, StringComparison.Ordinal) + Marker.Length;
        var script = readme[from..readme.IndexOf("```", from, StringComparison.Ordinal)];
        Assert.Contains("ROLE=node NAME=edge-1\n", script, StringComparison.Ordinal);
        var start = new System.Diagnostics.ProcessStartInfo("bash") { WorkingDirectory = folder, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-ec");
        start.ArgumentList.Add(script.Replace("ROLE=node NAME=edge-1\n", $"ROLE={role} NAME={name}\n", StringComparison.Ordinal));
        using var process = System.Diagnostics.Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"the README's openssl block failed for {role} {name}: {await errors}");
    }

    /// <summary>
    /// Dials a link with <paramref name="credentials"/> and asks for <paramref name="target"/>: the
    /// status, or null when the link was refused. Under TLS 1.3 the dialler's handshake ends
    /// before the far end has checked its certificate, so a refusal may show only as the session
    /// ending.
    /// </summary>
    private static async Task<TunnelStatus?> ConnectRequestAsync(IPEndPoint endPoint, NodeCredentials credentials, string target)
    {
        DialledLink link;
        try
        {
            link = await LinkDialer.DialAsync(Tcp(), endPoint, credentials, "edge-b", NodeCredentials.LinkProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
        {
            return null;
        }

        await using var connection = link.Connection;
        await using var session = link.Session;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.Connect, string.Empty, target), timeout.Token);
        if (stream is not null)
        {
            await stream.DisposeAsync();
        }

        return status;
    }

    private static string PrometheusText(RunningForwarder node) => Infrastructure.PrometheusText.Render(node.Metrics, node.Runtime);

    /// <summary>Whether <paramref name="message"/> comes back through the connection, rather than the connection closing.</summary>
    private static async Task<bool> EchoesAsync(Socket socket, string message)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(message);
        await socket.SendAsync(bytes, SocketFlags.None);
        var received = new byte[bytes.Length];
        var count = 0;
        using var timeout = new CancellationTokenSource(SocketClient.ReadTimeout);
        try
        {
            while (count < received.Length && await socket.ReceiveAsync(received.AsMemory(count), SocketFlags.None, timeout.Token) is > 0 and var read)
            {
                count += read;
            }
        }
        catch (SocketException)
        {
            return false;
        }

        return count == received.Length && received.AsSpan().SequenceEqual(bytes);
    }

    private NodeCredentials Credentials(string name) => new(
        name,
        new Forwarder.Configuration.CertificateFiles(Path.Combine(_directory, name + ".pem"), Path.Combine(_directory, name + ".key")),
        Path.Combine(_directory, "ca.pem"),
        NullLogger.Instance);

    private static TcpConnectionFactory Tcp() => new(new TcpTransportOptions(), new Forwarder.Transports.Memory.PinnedBlockMemoryPool(64 * 1024), splicer: null);

    private static IPEndPoint LinkEndPoint(RunningForwarder node) => (IPEndPoint)node.Service<NodeLinkListener>().BoundEndPoint!;

    private static string LinkAddress(RunningForwarder node)
        => $"127.0.0.1:{((IPEndPoint)node.Service<NodeLinkListener>().BoundEndPoint!).Port}";

    /// <param name="peers">The nodes B admits.</param>
    /// <param name="privateEndpoint">An endpoint of a second service B hosts but does not export.</param>
    /// <param name="authority">B's CA file; the mesh's by default.</param>
    /// <param name="certificateFolder">Where NAME.pem/.key and ca.pem are; the mesh's folder by default.</param>
    /// <param name="transport">B's node.transport: quic or auto make it take QUIC links too.</param>
    /// <param name="listen">B's node.listen.</param>
    private Task<RunningForwarder> StartNodeBAsync(string hostedEndpoint, string name = "edge-b", string peers = "edge-a", string? privateEndpoint = null, string? authority = null, bool acceptUnlisted = false, string? certificateFolder = null, string transport = "tcp", string listen = "127.0.0.1:0", string keepAlive = "15s")
        => RunningForwarder.StartAsync(NodeB(hostedEndpoint, name, peers, privateEndpoint, authority, acceptUnlisted, certificateFolder, transport: transport, listen: listen, keepAlive: keepAlive));

    /// <summary>Node B's config, as <see cref="StartNodeBAsync"/> describes it; <paramref name="export"/> is service app's.</summary>
    private string NodeB(string hostedEndpoint, string name = "edge-b", string peers = "edge-a", string? privateEndpoint = null, string? authority = null, bool acceptUnlisted = false, string? certificateFolder = null, bool export = true, string transport = "tcp", string listen = "127.0.0.1:0", string keepAlive = "15s") => $"""
        node:
          name: {name}
          transport: {transport}
          keepAlive: {keepAlive}
          listen: '{listen}'
          acceptUnlistedPeers: {(acceptUnlisted ? "true" : "false")}
          certificate: {Path.Combine(certificateFolder ?? _directory, name + ".pem")}
          key: {Path.Combine(certificateFolder ?? _directory, name + ".key")}
          ca: {authority ?? Path.Combine(certificateFolder ?? _directory, "ca.pem")}
          peers: [ {string.Join(", ", peers.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => $"{{ name: {p} }}"))} ]
        listeners:
          - name: unused
            listen: '127.0.0.1:0'
            protocol: echo
        services:
          app:
            export: {(export ? "true" : "false")}
            endpoints:
              - address: {hostedEndpoint}
        {(privateEndpoint is null ? string.Empty : $"  private:\n    endpoints:\n      - address: {privateEndpoint}")}
        """;

    /// <param name="privateEndpoint">Reached through listener "private" as an endpoint on B.</param>
    /// <param name="certificate">Where edge-a.pem/.key are; the mesh's folder by default.</param>
    /// <param name="authority">A's CA file; ca.pem beside the certificate by default.</param>
    /// <param name="transport">A's node.transport.</param>
    /// <param name="keepAlive">A's node.keepAlive (the link's ping interval).</param>
    private Task<RunningForwarder> StartNodeAAsync(string linkAddress, string endpoint, string? certificateFolder = null, string? privateEndpoint = null, string? authority = null, string transport = "tcp", string keepAlive = "15s")
    {
        var folder = certificateFolder ?? _directory;
        return RunningForwarder.StartAsync($"""
            node:
              name: edge-a
              transport: {transport}
              keepAlive: {keepAlive}
              certificate: {Path.Combine(folder, "edge-a.pem")}
              key: {Path.Combine(folder, "edge-a.key")}
              ca: {authority ?? Path.Combine(folder, "ca.pem")}
              peers:
                - {"{"} name: edge-b, address: '{linkAddress}' {"}"}
            listeners:
              - name: front
                listen: '127.0.0.1:0'
                service: app
            {(privateEndpoint is null ? string.Empty : "  - { name: private, listen: '127.0.0.1:0', service: private }")}
            services:
              app:
                connectAttempts: 1
                endpoints:
                  - {"{"} address: '{endpoint}', node: edge-b {"}"}
            {(privateEndpoint is null ? string.Empty : $"  private:\n    connectAttempts: 1\n    endpoints:\n      - {{ address: '{privateEndpoint}', node: edge-b }}")}
            """);
    }
}
