using System.Diagnostics;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// Runs scenarios: initialises their workers, drives the load plan, checks the thresholds at each
/// reporting interval (aborting on a break), and gathers the stats and threshold verdicts.
/// </summary>
public static class ScenarioRunner
{
    /// <summary>Runs several scenarios at the same time, each on its own plan.</summary>
    public static Task<ScenarioStats[]> RunAsync(IEnumerable<Scenario> scenarios, CancellationToken cancellationToken = default)
        => Task.WhenAll(scenarios.Select(s => RunAsync(s, cancellationToken)));

    /// <summary>Runs <paramref name="scenario"/> to its end, its abort, or <paramref name="cancellationToken"/>, and returns what it measured.</summary>
    public static async Task<ScenarioStats> RunAsync(Scenario scenario, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scenario);
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
        ThresholdBreach? breach;
        using (new Timer(_ => AbortOverdue(workers, timeoutTicks), null, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10)))
        using (var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        using (var waited = new CancellationTokenSource())
        {
            var monitor = MonitorAsync(scenario, plan, workers, abort, waited.Token);
            await WaitAsync(running, plan.End + LoadPlan.ToTicks(scenario.GracePeriod), abort.Token).ConfigureAwait(false);
            await waited.CancelAsync().ConfigureAwait(false);
            breach = await monitor.ConfigureAwait(false);
        }

        // Aborted: nothing new starts, and what runs gets the grace period to finish and count.
        // Work due after the abort was never part of the run.
        var dueBy = long.MaxValue;
        if (breach is not null)
        {
            dueBy = Stopwatch.GetTimestamp();
            foreach (var worker in workers)
            {
                worker.Drain();
            }

            await WaitAsync(running, dueBy + LoadPlan.ToTicks(scenario.GracePeriod), cancellationToken).ConfigureAwait(false);
        }

        // The wait is over, finished or not: an invocation that ignores its timeout cannot hold
        // the run. What is still due or in flight is counted, then told to stop.
        var stoppedAt = Stopwatch.GetTimestamp();
        await stopSampling.CancelAsync().ConfigureAwait(false);
        var totals = new InvocationStats(trackIntervals: sampler is not null);
        foreach (var worker in workers)
        {
            worker.Close(stoppedAt, Math.Min(stoppedAt, dueBy));
        }

        CountUntaken(plan, stoppedAt, Math.Min(stoppedAt, dueBy), totals);
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

        // An aborted run, or an iteration count done early, measured only the time it took.
        var duration = breach is not null ? MeasuredUntil(plan, dueBy) : plan.CountsIterations ? MeasuredUntil(plan, stoppedAt) : plan.Measured;
        var stats = new ScenarioStats(scenario.Name, duration, plan.RequestedRate, scenario.GracePeriod, totals, [], breach);
        return stats.WithThresholds([.. scenario.Thresholds.Select(t => new ThresholdResult(t.Description, t.Description != breach?.Description && t.Check(stats) == true))]);
    }

    /// <summary>
    /// At each reporting interval past the warm-up: merges the workers' stats so far, prints the
    /// live line, and checks the thresholds; the first broken one cancels <paramref name="abort"/>
    /// and is returned. Ends when <paramref name="waited"/> is cancelled.
    /// </summary>
    private static async Task<ThresholdBreach?> MonitorAsync(Scenario scenario, LoadPlan plan, ScenarioWorker[] workers, CancellationTokenSource abort, CancellationToken waited)
    {
        if (scenario.Thresholds.Count == 0 && scenario.LiveOutput is null)
        {
            return null;
        }

        using var timer = new PeriodicTimer(scenario.ReportingInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(waited).ConfigureAwait(false))
            {
                // Not before half an interval is measured: a tick just after the warm-up would judge a handful.
                var now = Stopwatch.GetTimestamp();
                if (now < plan.MeasureStart + (LoadPlan.ToTicks(scenario.ReportingInterval) / 2))
                {
                    continue;
                }

                var soFar = new InvocationStats();
                foreach (var worker in workers)
                {
                    lock (worker.Context.Gate)
                    {
                        soFar.Add(worker.Stats);
                    }
                }

                var stats = new ScenarioStats(scenario.Name, MeasuredUntil(plan, now), plan.RequestedRate, scenario.GracePeriod, soFar, [], isFinal: false);
                if (scenario.LiveOutput is { } output)
                {
                    ScenarioReportWriter.WriteLive(output, stats);
                }

                if (scenario.Thresholds.FirstOrDefault(t => t.Check(stats) == false) is { } broken)
                {
                    await abort.CancelAsync().ConfigureAwait(false);
                    return new ThresholdBreach(broken.Description, stats.Duration);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return null;
    }

    /// <summary>Measured time from the end of the warm-up to <paramref name="at"/>, at most the plan's.</summary>
    private static TimeSpan MeasuredUntil(LoadPlan plan, long at)
        => at <= plan.MeasureStart ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(Stopwatch.GetElapsedTime(plan.MeasureStart, at).Ticks, plan.Measured.Ticks));

    /// <summary>Waits for every worker to finish, until <paramref name="deadline"/> (a Stopwatch timestamp) at the latest, or until cancelled.</summary>
    private static async Task WaitAsync(Task running, long deadline, CancellationToken cancellationToken)
    {
        var remaining = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timer = Task.Delay(remaining, wake.Token);
        await Task.WhenAny(running, timer).ConfigureAwait(false);
        await wake.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>Open-loop tickets due by <paramref name="dueBy"/> that no worker took: unfinished, never sent.</summary>
    private static void CountUntaken(LoadPlan plan, long stoppedAt, long dueBy, InvocationStats totals)
    {
        foreach (var phase in plan.Phases)
        {
            var (first, end) = phase.TakeRemainingTickets();
            for (var ticket = first; ticket < end; ticket++)
            {
                var intended = phase.IntendedStartOf(ticket);
                if (intended > dueBy)
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
