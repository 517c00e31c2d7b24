using Forwarder.L7.Http2.Client;
using Forwarder.Metrics;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>
/// The response budget's queue of refused streams: a stream whose lease ends while queued leaves
/// the queue at once, so a client that keeps its budget full and resets streams cannot grow it
/// (nor keep the exchanges, and their upstream connections, referenced).
/// </summary>
public sealed class Http2ResponseBudgetTests
{
    private const long Limit = 256 * 1024;

    // Never woken here (only Wake reaches the connection), so the exchanges need none.
    private static Http2ClientExchange Exchange() => new(null!, new Http2ClientOptions());

    /// <summary>What Unbind does for a queued stream, under its connection's lock.</summary>
    private static void EndLease(Http2ResponseBudget budget, Http2ClientExchange stream)
    {
        Assert.True(stream.Starved);
        budget.Forget(stream);
        stream.Starved = false;
    }

    [Fact]
    public void RefusedStreamsWhoseLeasesEnd_LeaveTheQueue_OnlyLiveOnesAreWokenFor()
    {
        var metrics = new ListenerMetrics("web");
        var budget = new Http2ResponseBudget(Limit, metrics);
        var hog = Exchange();
        Assert.Equal(Limit, budget.Take(Limit, hog));

        // The budget stays full while a thousand streams are refused, then reset.
        for (var i = 0; i < 1000; i++)
        {
            var stream = Exchange();
            Assert.Equal(0, budget.Take(64 * 1024, stream));
            EndLease(budget, stream);
            Assert.Null(stream.StarvedEntry.List);
        }

        Assert.Equal(1000, metrics.Http2ResponseBudgetExhaustions);

        // Room comes back with nobody queued: nothing to wake.
        Assert.False(budget.Release(Limit));

        // A live refused stream is still woken for, and one ended between two refusals goes too.
        Assert.Equal(Limit, budget.Take(Limit, hog));
        var live = Exchange();
        var gone = Exchange();
        Assert.Equal(0, budget.Take(64 * 1024, gone));
        Assert.Equal(0, budget.Take(64 * 1024, live));
        EndLease(budget, gone);
        Assert.True(budget.Release(64 * 1024));
        Assert.NotNull(live.StarvedEntry.List);
        EndLease(budget, live);
        Assert.Null(live.StarvedEntry.List);
        Assert.False(budget.Release(64 * 1024));
    }
}
