using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// Two forwarders in this process as two nodes, with certificates from <see cref="MeshAuthority"/>
/// (what <c>forwarder cert</c> makes): a tcp listener on node A reaches an endpoint hosted by
/// node B through a mutually authenticated TLS 1.3 link carrying yamux streams. B connects only
/// to endpoints it hosts; a node whose certificate is from another CA, or names another node,
/// is refused before any stream opens.
/// </summary>
public sealed class NodeLinkTests : IDisposable
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
    public async Task ANodeWithAForeignCertificate_IsRefusedBeforeAnyStream()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, certificateFolder: _foreign);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        Assert.Equal((0, 1), (nodeA.Metrics.Peer("edge-b").LinksUp, nodeA.Metrics.Peer("edge-b").LinkFailures));
        Assert.Equal(0, nodeB.Metrics.Listener(NodeLinkListener.MetricsName).Total);
    }

    [Fact]
    public async Task ANodeAnsweringUnderAnotherName_IsRefused()
    {
        await using var backend = TcpTestServer.Echo();

        // What answers at B's address proves it is edge-c, not the edge-b node A dials.
        await using var impostor = await StartNodeBAsync(backend.Address, name: "edge-c");
        await using var nodeA = await StartNodeAAsync(LinkAddress(impostor), backend.Address);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
    }

    private static string LinkAddress(RunningForwarder node)
        => $"127.0.0.1:{((IPEndPoint)node.Service<NodeLinkListener>().BoundEndPoint!).Port}";

    private Task<RunningForwarder> StartNodeBAsync(string hostedEndpoint, string name = "edge-b") => RunningForwarder.StartAsync($"""
        node:
          name: {name}
          listen: '127.0.0.1:0'
          certificate: {Path.Combine(_directory, name + ".pem")}
          key: {Path.Combine(_directory, name + ".key")}
          ca: {Path.Combine(_directory, "ca.pem")}
        listeners:
          - name: unused
            listen: '127.0.0.1:0'
            protocol: echo
        services:
          app:
            endpoints:
              - address: {hostedEndpoint}
        """);

    private Task<RunningForwarder> StartNodeAAsync(string linkAddress, string endpoint, string? certificateFolder = null)
    {
        var folder = certificateFolder ?? _directory;
        return RunningForwarder.StartAsync($"""
            node:
              name: edge-a
              certificate: {Path.Combine(folder, "edge-a.pem")}
              key: {Path.Combine(folder, "edge-a.key")}
              ca: {Path.Combine(folder, "ca.pem")}
              peers:
                - {"{"} name: edge-b, address: '{linkAddress}' {"}"}
            listeners:
              - name: front
                listen: '127.0.0.1:0'
                service: app
            services:
              app:
                connectAttempts: 1
                endpoints:
                  - {"{"} address: '{endpoint}', node: edge-b {"}"}
            """);
    }
}
