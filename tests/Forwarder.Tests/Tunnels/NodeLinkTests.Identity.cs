using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <content>Who may link: a foreign CA, another name, a node not in peers, and a relay or node certificate used in the other role are refused before any stream.</content>
public sealed partial class NodeLinkTests
{
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

    [Fact]
    public async Task ANodeNotInPeers_CannotOpenALink_UnlessUnlistedPeersAreAccepted()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, peers: "edge-c");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address);

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(LinkRefusal.Unlisted) == 1, "B counts the refused link as unlisted");
        Assert.Equal(0, nodeB.Metrics.Peer("edge-a").LinksOpened);
        Assert.Equal(1, nodeA.Metrics.Service("app").ConnectErrors(ConnectFailure.Unreachable));
        await Eventually.TrueAsync(() => nodeA.Metrics.Peer("edge-b").LinkFailures == 1, "A counts the link B closed at once as failed, and waits before the next");

        await using var open = await StartNodeBAsync(backend.Address, peers: "edge-c", acceptUnlisted: true);
        await using var toOpen = await StartNodeAAsync(LinkAddress(open), backend.Address);
        using var admitted = await SocketClient.ConnectAsync(toOpen.EndPoint("front"));
        await SocketClient.AssertEchoAsync(admitted, "any node of the mesh may link");
    }

    [Fact]
    public async Task ARelayCertificate_CannotOpenANodeLink()
    {
        await using var backend = TcpTestServer.Echo();

        // B would admit relay-1 by name: only the certificate's role keeps it out.
        await using var nodeB = await StartNodeBAsync(backend.Address, peers: "edge-a,relay-1");
        using var relayCredentials = Credentials("relay-1");
        Assert.Null(await ConnectRequestAsync(LinkEndPoint(nodeB), relayCredentials, backend.Address));

        await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(LinkRefusal.Role) == 1, "B counts the refused link as the wrong role");
        Assert.Equal(0, nodeB.Metrics.Peer("relay-1").LinksOpened);
        Assert.Equal(0, backend.AcceptedCount);
    }

    [Fact]
    public async Task ANodeCertificate_CannotAnswerAsARelay()
    {
        // edge-b's certificate behind a relay's protocol, where a node dials relay "edge-b".
        using var impostor = Credentials("edge-b");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var serving = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            await using var ssl = new System.Net.Security.SslStream(new NetworkStream(socket, ownsSocket: false));
            try
            {
                await ssl.AuthenticateAsServerAsync(impostor.ServerOptions(NodeCredentials.RelayProtocol, new PeerVerdict()));
            }
            catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
            {
                // The node refuses the impostor's certificate and closes.
            }
        });

        using var node = Credentials("edge-a");
        var refused = await Assert.ThrowsAsync<System.Security.Authentication.AuthenticationException>(() => LinkDialer.DialAsync(Tcp(), listener.LocalEndpoint, node, "edge-b", NodeCredentials.RelayProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), CancellationToken.None));
        Assert.Contains("forwarder://node/edge-b, where a relay was expected", refused.Message, StringComparison.Ordinal);
        await serving;
    }
}
