using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Cluster;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

/// <content>VIPs from Kubernetes discovery: the rules and the VIP map follow the API server's Services and EndpointSlices.</content>
public sealed partial class InterceptionTests
{
    [Fact]
    public async Task DiscoveredClusterIp_IsIntercepted_AndFollowsEndpointChangesWithoutLosingOpenConnections()
    {
        await using var api = new FakeKubeApiServer();
        await api.StartAsync();

        // The fake serves on the test process's loopback; the node reaches it through this relay.
        await using var relay = new TcpTestServer(client => PipeAsync(client, new IPEndPoint(IPAddress.Loopback, api.Port)), address: lab.HostAddress);
        await using var a = ClusterTestKit.Backend('A', lab.HostAddress);
        await using var b = ClusterTestKit.Backend('B', lab.HostAddress);
        var vip = new IPEndPoint(InterceptLab.Vip(30), 80);
        api.Put(FakeKubeApiServer.Service("default", "web", vip.Address.ToString(), ("http", 80, 8080, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-a", "http", a.EndPoint.Port, (lab.HostAddress.ToString(), "node-a", "zone-1", true)));

        await StartAsync($$"""
            cluster:
              kubernetes:
                apiServer: http://{{relay.Address}}
                tokenFile: /nonexistent/token
            """);
        await Eventually.TrueAsync(() => lab.Rules().Contains($"-d {vip.Address}/32", StringComparison.Ordinal), "discovery adds the ClusterIP's rules");

        using var open = await ConnectAsync(lab.Pod, vip);
        Assert.Equal('A', (char)(await SocketClient.ReceiveExactlyAsync(open, 1))[0]);

        // The endpoint moves: new connections go to B, the open one stays with A.
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-a", "http", a.EndPoint.Port, (lab.HostAddress.ToString(), "node-a", "zone-1", false)));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-b", "http", b.EndPoint.Port, (lab.HostAddress.ToString(), "node-b", "zone-2", true)));
        await Eventually.TrueAsync(
            async () =>
            {
                using var probe = await ConnectAsync(lab.Pod, vip);
                return (await SocketClient.ReceiveExactlyAsync(probe, 1))[0] == 'B';
            },
            "new connections reach the new endpoint");
        await SocketClient.AssertEchoAsync(open, "still here");

        // A Service deleted: its VIP's rules go with it.
        api.Delete(FakeKubeApiServer.Service("default", "web", vip.Address.ToString(), ("http", 80, 8080, "TCP")));
        await Eventually.TrueAsync(() => !lab.Rules().Contains($"-d {vip.Address}/32", StringComparison.Ordinal), "the deleted Service's rules are removed");
    }

    private static async Task PipeAsync(Socket client, IPEndPoint target)
    {
        using var upstream = await SocketClient.ConnectAsync(target);
        Task[] copies = [CopyAsync(client, upstream), CopyAsync(upstream, client)];

        // A watch never ends by itself: when the relay closes the client side, the upstream goes too.
        await Task.WhenAny(copies);
        upstream.Dispose();
        client.Dispose();
        await Task.WhenAll(copies);
    }

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // One side went away; the other is closed with it.
        }
    }
}
