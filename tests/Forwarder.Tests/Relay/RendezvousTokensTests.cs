using System.Net;
using Forwarder.Relay;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The tokens the relay issues: at most <see cref="RendezvousTokens.MaxPerNode"/> outstanding
/// per node, a place freed when the token is answered or withdrawn; an address is bound only to
/// an issued token, only the first one, and answered only to the node the token was issued to.
/// </summary>
public sealed class RendezvousTokensTests
{
    private static readonly IPEndPoint Node = new(IPAddress.Parse("198.51.100.7"), 4000);

    [Fact]
    public async Task ANode_HoldsAtMostEightOutstanding_AndAnAnsweredOrWithdrawnTokenFreesItsPlace()
    {
        var tokens = new RendezvousTokens(TimeProvider.System);
        var issued = Enumerable.Range(0, RendezvousTokens.MaxPerNode).Select(_ => tokens.Issue("edge-a")).ToList();
        Assert.All(issued, Assert.NotNull);
        Assert.Equal(RendezvousTokens.MaxPerNode, issued.Distinct().Count());
        Assert.Null(tokens.Issue("edge-a"));
        Assert.NotNull(tokens.Issue("edge-b"));

        Assert.True(tokens.Note(issued[0]!, Node));
        Assert.Equal(Node, await tokens.SeenAsync(issued[0]!, "edge-a", TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.NotNull(tokens.Issue("edge-a"));
        Assert.Null(tokens.Issue("edge-a"));

        tokens.Withdraw(issued[1]!);
        Assert.False(tokens.Note(issued[1]!, Node));
        Assert.NotNull(tokens.Issue("edge-a"));
        Assert.Equal(RendezvousTokens.MaxPerNode + 1, tokens.Outstanding);
    }

    [Fact]
    public async Task OnlyTheFirstAddress_IsBound_AndOnlyTheIssuingNodeLearnsIt()
    {
        var tokens = new RendezvousTokens(TimeProvider.System);
        var token = tokens.Issue("edge-a")!;
        var other = new IPEndPoint(IPAddress.Parse("203.0.113.9"), 4000);

        Assert.False(tokens.Note("00112233445566778899aabbccddeeff", Node));
        Assert.True(tokens.Note(token, Node));
        Assert.True(tokens.Note(token, Node));
        Assert.False(tokens.Note(token, other));
        Assert.Equal((1L, 1L), (tokens.RefusedUnknown, tokens.RefusedRebound));

        Assert.Null(await tokens.SeenAsync(token, "edge-b", TimeSpan.FromMilliseconds(50), CancellationToken.None));
        Assert.Equal(Node, await tokens.SeenAsync(token, "edge-a", TimeSpan.FromSeconds(30), CancellationToken.None));

        // Late copies of an answered token from its own address are neither unknown nor rebound.
        Assert.True(tokens.Note(token, Node));
        Assert.Equal((1L, 1L), (tokens.RefusedUnknown, tokens.RefusedRebound));
    }
}
