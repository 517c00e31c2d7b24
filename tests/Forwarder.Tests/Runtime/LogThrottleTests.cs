using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

public sealed class LogThrottleTests
{
    [Fact]
    public void TheFirstLinePasses_TheRestOfTheIntervalIsCounted_AndSubjectsAreApart()
    {
        var throttle = new LogThrottle(TimeSpan.FromHours(1));

        Assert.True(throttle.TryLog("route", "svc", out var suppressed));
        Assert.Equal(0, suppressed);
        for (var i = 0; i < 5; i++)
        {
            Assert.False(throttle.TryLog("route", "svc", out _));
        }

        Assert.True(throttle.TryLog("route", "other", out suppressed));
        Assert.Equal(0, suppressed);
        Assert.True(throttle.TryLog("other-route", "svc", out _));
    }

    [Fact]
    public async Task AfterTheInterval_TheNextLineSaysHowManyWereHeldBack()
    {
        var throttle = new LogThrottle(TimeSpan.FromMilliseconds(500));
        var since = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(throttle.TryLog("a", "b", out _));
        var held = 0;
        for (; held < 3 && !throttle.TryLog("a", "b", out _); held++)
        {
        }

        // Waiting without asking: every refused call would count as one more held back.
        await Eventually.TrueAsync(() => since.ElapsedMilliseconds > 600, "the interval passes");
        Assert.True(throttle.TryLog("a", "b", out var reported));
        Assert.Equal(held, reported);
    }

    [Fact]
    public async Task UnderContention_ExactlyOneLinePassesPerInterval()
    {
        var throttle = new LogThrottle(TimeSpan.FromHours(1));
        const int Threads = 4;
        const int Calls = 20_000;
        var passed = 0;
        var start = new Barrier(Threads);
        await Task.WhenAll(Enumerable.Range(0, Threads).Select(thread => Task.Run(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < Calls; i++)
            {
                if (throttle.TryLog("hot", "path", out _))
                {
                    Interlocked.Increment(ref passed);
                }
            }
        })));

        Assert.Equal(1, passed);
    }
}
