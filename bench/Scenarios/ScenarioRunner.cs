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
        using var stopping = new CancellationTokenSource();
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
        var running = Task.WhenAll(workers.Select(w => Task.Run(w.RunAsync, CancellationToken.None)));
        var sampler = scenario.Intervals is { } intervals ? new IntervalSampler(workers, plan, intervals) : null;
        using var stopSampling = new CancellationTokenSource();
        var sampling = sampler?.RunAsync(stopSampling.Token) ?? Task.CompletedTask;
        var timeoutTicks = LoadPlan.ToTicks(scenario.Timeout);
        using (new Timer(_ => AbortOverdue(workers, timeoutTicks), null, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10)))
        {
            await WaitAsync(running, plan.End + LoadPlan.ToTicks(scenario.GracePeriod), cancellationToken).ConfigureAwait(false);
        }

        // The wait is over, finished or not: an invocation that ignores its timeout cannot hold
        // the run. What is still due or in flight is counted, then told to stop.
        var stoppedAt = Stopwatch.GetTimestamp();
        await stopSampling.CancelAsync().ConfigureAwait(false);
        var totals = new InvocationStats(trackIntervals: sampler is not null);
        foreach (var worker in workers)
        {
            worker.Close(stoppedAt);
        }

        CountUntaken(plan, stoppedAt, totals);
        await stopping.CancelAsync().ConfigureAwait(false);
        foreach (var worker in workers)
        {
            worker.AbortIfStartedBefore(long.MaxValue);
        }

        if (running.IsCompleted)
        {
            await running.ConfigureAwait(false);
        }
        else
        {
            // Left behind: nothing it does records any more, but a fault must still be observed.
            _ = running.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        if (scenario.Clean is { } clean)
        {
            await Task.WhenAll(workers.Select(w => clean(w.Context).AsTask())).ConfigureAwait(false);
        }

        await sampling.ConfigureAwait(false);
        sampler?.ReportLast(stoppedAt, totals);
        foreach (var worker in workers)
        {
            totals.Add(worker.Stats);
        }

        var stats = new ScenarioStats(scenario.Name, plan.Measured, plan.RequestedRate, scenario.GracePeriod, totals, []);
        return stats.WithThresholds([.. scenario.Thresholds.Select(t => new ThresholdResult(t.Description, t.Check(stats)))]);
    }

    /// <summary>Waits for every worker to finish, until <paramref name="deadline"/> (a Stopwatch timestamp) at the latest, or until cancelled.</summary>
    private static async Task WaitAsync(Task running, long deadline, CancellationToken cancellationToken)
    {
        var remaining = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timer = Task.Delay(remaining, wake.Token);
        await Task.WhenAny(running, timer).ConfigureAwait(false);
        await wake.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>Open-loop tickets due by <paramref name="stoppedAt"/> that no worker took: unfinished, never sent.</summary>
    private static void CountUntaken(LoadPlan plan, long stoppedAt, InvocationStats totals)
    {
        foreach (var phase in plan.Phases)
        {
            var (first, end) = phase.TakeRemainingTickets();
            for (var ticket = first; ticket < end; ticket++)
            {
                var intended = phase.IntendedStartOf(ticket);
                if (intended > stoppedAt)
                {
                    break;
                }

                if (intended >= plan.MeasureStart)
                {
                    totals.RecordUnfinished(Stopwatch.GetElapsedTime(intended, stoppedAt), null);
                }
            }
        }
    }

    private static void AbortOverdue(ScenarioWorker[] workers, long timeoutTicks)
    {
        var startedBefore = Stopwatch.GetTimestamp() - timeoutTicks;
        foreach (var worker in workers)
        {
            worker.AbortIfStartedBefore(startedBefore);
        }
    }
}
