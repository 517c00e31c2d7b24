using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Tests.Infrastructure;

/// <summary>Stats of a run as the runner would have gathered them, for report tests.</summary>
internal static class RunStats
{
    /// <summary>A 1 s run at 100 req/s: <paramref name="ok"/> answered in the window, <paramref name="unfinished"/> never.</summary>
    public static ScenarioStats OpenLoop(int ok, int unfinished)
    {
        var totals = new InvocationStats();
        for (var i = 0; i < ok; i++)
        {
            totals.Record(Response.Ok(200, 10), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1), timedOut: false, inWindow: true);
        }

        totals.CountCompleted(0, ok);
        for (var i = 0; i < unfinished; i++)
        {
            totals.RecordUnfinished(TimeSpan.FromSeconds(2), null);
        }

        return new ScenarioStats("load", TimeSpan.FromSeconds(1), 100, TimeSpan.FromSeconds(2), totals, []);
    }
}
