using System.Net;
using Forwarder.Relay;

namespace Forwarder.Tests.Relay;

/// <summary>
/// The tokens the relay issues: at most <see cref="RendezvousTokens.MaxPerNode"/> outstanding
/// per node for its own punches, and apart from those <see cref="RendezvousTokens.MaxIntroducedPerNode"/>
/// as the far end of others' introductions, <see cref="RendezvousTokens.MaxPerAsker"/> per asker;
/// a place freed when the token is answered or withdrawn; an address is bound only to
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

    // One asker's introductions take at most two of the far node's places, however many it asks
    // for; other askers have the rest, and the far node's own punches have places of their own.
    [Fact]
    public async Task OneAsker_TakesAtMostTwoOfAFarNodesPlaces_AndTheFarNodesOwnPlacesAreApart()
    {
        var tokens = new RendezvousTokens(TimeProvider.System);
        var forA = new[] { tokens.Issue("edge-b", "edge-a"), tokens.Issue("edge-b", "edge-a") };
        Assert.All(forA, Assert.NotNull);
        Assert.Null(tokens.Issue("edge-b", "edge-a"));

        var others = Enumerable.Range(0, 3).SelectMany(i => new[] { tokens.Issue("edge-b", $"edge-{i}"), tokens.Issue("edge-b", $"edge-{i}") }).ToList();
        Assert.All(others, Assert.NotNull);
        Assert.Null(tokens.Issue("edge-b", "edge-z"));
        Assert.Equal(RendezvousTokens.MaxIntroducedPerNode, tokens.Outstanding);

        // The far node's own punches, and other far nodes' places for the same asker, are untouched.
        Assert.All(Enumerable.Range(0, RendezvousTokens.MaxPerNode).Select(_ => tokens.Issue("edge-b")), Assert.NotNull);
        Assert.Null(tokens.Issue("edge-b"));
        Assert.NotNull(tokens.Issue("edge-c", "edge-a"));

        // An answered token and a withdrawn one free the asker's places.
        Assert.True(tokens.Note(forA[0]!, Node));
        Assert.Equal(Node, await tokens.SeenAsync(forA[0]!, "edge-b", TimeSpan.FromSeconds(30), CancellationToken.None));
        tokens.Withdraw(forA[1]!);
        Assert.All(new[] { tokens.Issue("edge-b", "edge-a"), tokens.Issue("edge-b", "edge-a") }, Assert.NotNull);
        Assert.Null(tokens.Issue("edge-b", "edge-a"));
    }
}
