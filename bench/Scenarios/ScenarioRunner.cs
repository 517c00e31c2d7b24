using System.Diagnostics;

namespace Forwarder.Bench.Scenarios;

/// <summary>Runs scenarios: initialises their workers, drives the load plan, and gathers the stats and threshold verdicts.</summary>
internal static class ScenarioRunner
{
    /// <summary>Runs several scenarios at the same time, each on its own plan.</summary>
    public static Task<ScenarioStats[]> RunAsync(IEnumerable<Scenario> scenarios, CancellationToken cancellationToken = default)
        => Task.WhenAll(scenarios.Select(s => RunAsync(s, cancellationToken)));

    public static async Task<ScenarioStats> RunAsync(Scenario scenario, CancellationToken cancellationToken = default)
    {
        var plan = LoadPlan.Create(scenario);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var pacer = new Pacer();
        var workers = Enumerable.Range(0, plan.Workers).Select(i => new ScenarioWorker(i, scenario, plan, pacer, stopping.Token)).ToArray();
        if (scenario.Init is { } init)
        {
            try
            {
                await Task.WhenAll(workers.Select(w => init(w.Context).AsTask())).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw new InvalidOperationException($"Scenario '{scenario.Name}': init failed: {ex.Message}", ex);
            }
        }

        // A short lead lets every worker reach its first wait before the first ticket is due.
        plan.Start(Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100));
        stopping.CancelAfter(TimeSpan.FromSeconds((plan.End - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency) + scenario.Timeout);
        var timeoutTicks = LoadPlan.ToTicks(scenario.Timeout);
        using (new Timer(_ => AbortOverdue(workers, timeoutTicks, stopping.IsCancellationRequested), null, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10)))
        {
            await Task.WhenAll(workers.Select(w => Task.Run(w.RunAsync, CancellationToken.None))).ConfigureAwait(false);
        }

        if (scenario.Clean is { } clean)
        {
            await Task.WhenAll(workers.Select(w => clean(w.Context).AsTask())).ConfigureAwait(false);
        }

        var totals = new InvocationStats();
        foreach (var worker in workers)
        {
            totals.Add(worker.Stats);
        }

        var stats = new ScenarioStats(scenario.Name, plan.Measured, plan.RequestedRate, totals, []);
        return stats.WithThresholds([.. scenario.Thresholds.Select(t => new ThresholdResult(t.Description, t.Check(stats)))]);
    }

    private static void AbortOverdue(ScenarioWorker[] workers, long timeoutTicks, bool stopped)
    {
        // Once the run is over, whatever is still in flight is cut short.
        var startedBefore = stopped ? long.MaxValue : Stopwatch.GetTimestamp() - timeoutTicks;
        foreach (var worker in workers)
        {
            worker.AbortIfStartedBefore(startedBefore);
        }
    }
}
