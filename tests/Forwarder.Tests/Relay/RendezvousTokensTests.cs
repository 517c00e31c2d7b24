using System.Net;
using Forwarder.Relay;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The per-source quota of tokens nobody named yet: a host cannot buy more of it by sending from
/// other addresses of its IPv6 /64, nor by an IPv4 address written IPv4-mapped.
/// </summary>
public sealed class RendezvousTokensTests
{
    [Fact]
    public void OneIPv6Slash64_SharesOneQuota_AndAnotherSlash64HasItsOwn()
    {
        var tokens = new RendezvousTokens(TimeProvider.System);
        for (var i = 1; i <= RendezvousTokens.MaxUnclaimedPerSource + 10; i++)
        {
            tokens.Note($"a{i}", new IPEndPoint(IPAddress.Parse($"2001:db8:0:1::{i:x}"), 4000));
        }

        Assert.Equal(RendezvousTokens.MaxUnclaimedPerSource, tokens.Unclaimed);
        tokens.Note("b", new IPEndPoint(IPAddress.Parse("2001:db8:0:2::1"), 4000));
        Assert.Equal(RendezvousTokens.MaxUnclaimedPerSource + 1, tokens.Unclaimed);
    }

    [Fact]
    public async Task AnIPv4AddressAndItsMappedForm_ShareOneQuota_AndANamedTokenFreesItsPlace()
    {
        var tokens = new RendezvousTokens(TimeProvider.System);
        for (var i = 0; i < RendezvousTokens.MaxUnclaimedPerSource; i++)
        {
            tokens.Note($"v4-{i}", new IPEndPoint(IPAddress.Parse("198.51.100.7"), 4000));
        }

        tokens.Note("mapped", new IPEndPoint(IPAddress.Parse("::ffff:198.51.100.7"), 4000));
        Assert.Equal(RendezvousTokens.MaxUnclaimedPerSource, tokens.Unclaimed);

        // A token named frees its place in the source's quota, whichever form the next one comes in.
        Assert.NotNull(await tokens.SeenAsync("v4-0", TimeSpan.FromSeconds(30), CancellationToken.None));
        tokens.Note("mapped", new IPEndPoint(IPAddress.Parse("::ffff:198.51.100.7"), 4000));
        Assert.Equal(RendezvousTokens.MaxUnclaimedPerSource, tokens.Unclaimed);
        Assert.Equal(IPAddress.Parse("::ffff:198.51.100.7"), (await tokens.SeenAsync("mapped", TimeSpan.FromSeconds(30), CancellationToken.None))!.Address);
    }
}
