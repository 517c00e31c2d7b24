using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The relay's UDP rendezvous as an attacker meets it: anyone may send it datagrams, from any
/// source. Tokens nobody asked for are kept to a bound, and tokens a node names over its session
/// still get their address during a flood.
/// </summary>
public sealed class RelayRendezvousTests
{
    private static byte[] Datagram(out string token)
    {
        var datagram = new byte[RelayRendezvous.Magic.Length + RelayRendezvous.TokenLength];
        RelayRendezvous.Magic.CopyTo(datagram);
        RandomNumberGenerator.Fill(datagram.AsSpan(RelayRendezvous.Magic.Length));
        token = Convert.ToHexStringLower(datagram, RelayRendezvous.Magic.Length, RelayRendezvous.TokenLength);
        return datagram;
    }

    [Fact]
    public async Task TokenSeenBeforeItIsAskedFor_AnswersOnce()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var node = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        node.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        await node.SendToAsync(Datagram(out var token), rendezvous.EndPoint);
        await Eventually.TrueAsync(() => rendezvous.Tokens.Unclaimed == 1, "the token is kept until a node names it");

        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Equal(0, rendezvous.Tokens.Unclaimed);
        Assert.Null(await rendezvous.Tokens.SeenAsync(token, TimeSpan.FromMilliseconds(200), CancellationToken.None));
    }

    // One host (a node, or anyone) sends tokens without end: it gets its quota of the table, and
    // another node's token, sent before the node names it, is still kept and answers.
    [Fact]
    public async Task OneSourceFlooding_GetsItsQuota_AndAnotherNodesTokenIsStillKept()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);
        using var flooder = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        flooder.Bind(new IPEndPoint(IPAddress.Parse("127.0.3.1"), 0));
        for (var i = 0; i < 2 * RendezvousTokens.MaxUnclaimed; i++)
        {
            await flooder.SendToAsync(Datagram(out _), rendezvous.EndPoint);
            if (i % 256 == 255)
            {
                // What the relay's socket buffer holds at once.
                await Task.Delay(10);
            }
        }

        await Eventually.TrueAsync(() => rendezvous.Tokens.Unclaimed >= RendezvousTokens.MaxUnclaimedPerSource, "the flood takes its quota");
        using var node = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        node.Bind(new IPEndPoint(IPAddress.Parse("127.0.3.2"), 0));
        await node.SendToAsync(Datagram(out var token), rendezvous.EndPoint);
        await Eventually.TrueAsync(() => rendezvous.Tokens.Unclaimed == RendezvousTokens.MaxUnclaimedPerSource + 1, $"the node's token is kept beside the flood's quota ({rendezvous.Tokens.Unclaimed} kept)");
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, TimeSpan.Zero, CancellationToken.None));
    }

    [Fact]
    public async Task OnTheIPv6Wildcard_TokensFromIPv4Nodes_AreSeenAtTheirIPv4Address()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.IPv6Any, 0), TimeProvider.System);
        using var node = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        node.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        await node.SendToAsync(Datagram(out var token), new IPEndPoint(IPAddress.Loopback, rendezvous.EndPoint.Port));
        Assert.Equal(node.LocalEndPoint, await rendezvous.Tokens.SeenAsync(token, TimeSpan.FromSeconds(30), CancellationToken.None));
    }

    [Fact]
    public async Task Flood_IsBounded_AndANamedTokenStillGetsItsAddress()
    {
        await using var rendezvous = new RelayRendezvous(new IPEndPoint(IPAddress.Loopback, 0), TimeProvider.System);

        // From more source addresses than the table holds tokens of one source's quota.
        var attackers = Enumerable.Range(1, (RendezvousTokens.MaxUnclaimed / RendezvousTokens.MaxUnclaimedPerSource) + 16).Select(i =>
        {
            var attacker = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            attacker.Bind(new IPEndPoint(IPAddress.Parse($"127.0.2.{i}"), 0));
            return attacker;
        }).ToList();
        using var closing = new Disposables(attackers);
        var next = 0;

        // Bursts the relay's socket buffer can hold, until the table is full, then as many again.
        async Task BurstAsync()
        {
            for (var i = 0; i < 256; i++)
            {
                await attackers[next++ % attackers.Count].SendToAsync(Datagram(out _), rendezvous.EndPoint);
            }

            await Task.Delay(10);
        }

        await Eventually.TrueAsync(
            async () =>
            {
                await BurstAsync();
                return rendezvous.Tokens.Unclaimed >= 4096;
            },
            "the flood fills the table",
            TimeSpan.FromSeconds(120));
        for (var burst = 0; burst < 16; burst++)
        {
            await BurstAsync();
        }

        Assert.True(rendezvous.Tokens.Unclaimed <= 4096, $"{rendezvous.Tokens.Unclaimed} tokens kept");

        // A node names its token first (over its session), then sends it: the full table does not matter.
        using var node = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        node.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var datagram = Datagram(out var token);
        var seen = rendezvous.Tokens.SeenAsync(token, TimeSpan.FromSeconds(30), CancellationToken.None);
        using var sending = new CancellationTokenSource();
        var resend = Task.Run(async () =>
        {
            // UDP: resent until seen, as nodes send their tokens more than once.
            while (!sending.IsCancellationRequested)
            {
                await node.SendToAsync(datagram, rendezvous.EndPoint);
                await Task.Delay(100);
            }
        });

        Assert.Equal(node.LocalEndPoint, await seen);
        await sending.CancelAsync();
        await resend;
        Assert.True(rendezvous.Tokens.Unclaimed <= 4096, $"{rendezvous.Tokens.Unclaimed} tokens kept");
    }

    private sealed class Disposables(IEnumerable<IDisposable> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
            {
                item.Dispose();
            }
        }
    }
}
