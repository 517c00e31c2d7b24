using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The relay's UDP rendezvous as an attacker meets it: anyone may send it datagrams, from any
/// source. Only tokens the relay issued bind an address, only the first address they come from,
/// and only the node a token was issued to learns it.
/// </summary>
public sealed class RelayRendezvousTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static Socket Bound(string address)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
        return socket;
    }

    [Fact]
    public async Task IssuedToken_SeenBeforeItIsAskedFor_AnswersItsNodeOnce()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var node = Bound("127.0.0.1");
        var token = rendezvous.Tokens.Issue("edge-a")!;

        await node.SendToAsync(RelayRendezvous.Message(RelayRendezvous.Magic, token)!, rendezvous.EndPoint);
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, "edge-a", Wait, CancellationToken.None));
        Assert.Null(await rendezvous.Tokens.SeenAsync(token, "edge-a", TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Equal(0, rendezvous.Tokens.Outstanding);
    }

    [Fact]
    public async Task SpoofedToken_TheRelayNeverIssued_BindsNothing_AndIsCounted()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var attacker = Bound("127.0.3.1");
        var forged = new byte[RelayRendezvous.Magic.Length + RelayRendezvous.TokenLength];
        RelayRendezvous.Magic.CopyTo(forged);
        RandomNumberGenerator.Fill(forged.AsSpan(RelayRendezvous.Magic.Length));
        var token = Convert.ToHexStringLower(forged, RelayRendezvous.Magic.Length, RelayRendezvous.TokenLength);

        await attacker.SendToAsync(forged, rendezvous.EndPoint);
        await Eventually.TrueAsync(() => rendezvous.Tokens.RefusedUnknown == 1, "the forged token is refused as unknown");
        Assert.Null(await rendezvous.Tokens.SeenAsync(token, "edge-a", TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Equal(0, rendezvous.Tokens.Outstanding);
    }

    // An attacker who sees (or guesses the moment of) a node's token and sends it from its own
    // address, before or after the node: the first address is kept, the other ignored and counted.
    [Fact]
    public async Task IssuedToken_ResentFromASecondAddress_IsIgnored_AndCountedAsRebound()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var node = Bound("127.0.3.2");
        using var attacker = Bound("127.0.3.3");
        var token = rendezvous.Tokens.Issue("edge-a")!;
        var datagram = RelayRendezvous.Message(RelayRendezvous.Magic, token)!;

        await node.SendToAsync(datagram, rendezvous.EndPoint);
        await node.SendToAsync(datagram, rendezvous.EndPoint);
        await attacker.SendToAsync(datagram, rendezvous.EndPoint);
        await Eventually.TrueAsync(() => rendezvous.Tokens.RefusedRebound == 1, "the second address is refused");
        Assert.Equal(0, rendezvous.Tokens.RefusedUnknown);
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, "edge-a", Wait, CancellationToken.None));
    }

    [Fact]
    public async Task TokenIssuedToOneNode_AnswersNoOtherNode()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var node = Bound("127.0.0.1");
        var token = rendezvous.Tokens.Issue("edge-a")!;
        await node.SendToAsync(RelayRendezvous.Message(RelayRendezvous.Magic, token)!, rendezvous.EndPoint);

        Assert.Null(await rendezvous.Tokens.SeenAsync(token, "edge-b", TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, "edge-a", Wait, CancellationToken.None));
    }

    [Fact]
    public async Task OnTheIPv6Wildcard_TokensFromIPv4Nodes_AreSeenAtTheirIPv4Address()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.IPv6Any, 0), TimeProvider.System);
        using var node = Bound("127.0.0.1");
        var token = rendezvous.Tokens.Issue("edge-a")!;

        await node.SendToAsync(RelayRendezvous.Message(RelayRendezvous.Magic, token)!, new IPEndPoint(IPAddress.Loopback, rendezvous.EndPoint.Port));
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, "edge-a", Wait, CancellationToken.None));
    }
}
