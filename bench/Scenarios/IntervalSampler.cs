using System.Diagnostics;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// Every reporting interval of the measured window, swaps each worker's interval histogram for an
/// empty one and reports their sum. Swapping under the worker's gate is O(1), so the sampler holds
/// no worker up; summing and resetting happen outside it, with one spare histogram recycled.
/// </summary>
internal sealed class IntervalSampler
{
    private readonly ScenarioWorker[] _workers;
    private readonly LatencyIntervals _intervals;
    private readonly long _measureStart;
    private readonly DateTimeOffset _measureStartedAt;
    private LongHistogram _spare = InvocationStats.NewHistogram();
    private long _intervalStart;

    /// <summary>For a plan already started: its measure start is fixed.</summary>
    public IntervalSampler(ScenarioWorker[] workers, LoadPlan plan, LatencyIntervals intervals)
    {
        _workers = workers;
        _intervals = intervals;
        _measureStart = _intervalStart = plan.MeasureStart;
        var now = Stopwatch.GetTimestamp();
        _measureStartedAt = DateTimeOffset.UtcNow + TimeSpan.FromSeconds((plan.MeasureStart - now) / (double)Stopwatch.Frequency);
    }

    /// <summary>Reports an interval each <see cref="LatencyIntervals.Every"/> from the measure start until <paramref name="stop"/>.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var every = LoadPlan.ToTicks(_intervals.Every);
        for (var next = _measureStart + every; ; next += every)
        {
            var wait = next - Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            if (stop.IsCancellationRequested)
            {
                return;
            }

            Report(Stopwatch.GetTimestamp(), null);
        }
    }

    /// <summary>
    /// The last interval, up to <paramref name="stoppedAt"/> (when the run stopped waiting), once the
    /// workers are closed and <see cref="RunAsync"/> has returned: what they recorded since the last
    /// report and what the runner counted itself in <paramref name="runner"/>.
    /// </summary>
    public void ReportLast(long stoppedAt, InvocationStats runner) => Report(stoppedAt, runner);

    private void Report(long now, InvocationStats? runner)
    {
        // A tick that ran just after the run stopped waiting already took the interval further.
        now = Math.Max(now, _intervalStart);
        var sum = InvocationStats.NewHistogram();
        foreach (var worker in _workers)
        {
            Collect(sum, worker.SwapInterval(_spare));
        }

        if (runner is not null)
        {
            Collect(sum, runner.SwapInterval(_spare));
        }

        var start = TimeSpan.FromSeconds((_intervalStart - _measureStart) / (double)Stopwatch.Frequency);
        var length = TimeSpan.FromSeconds((now - _intervalStart) / (double)Stopwatch.Frequency);
        sum.StartTimeStamp = (_measureStartedAt + start).ToUnixTimeMilliseconds();
        sum.EndTimeStamp = (_measureStartedAt + start + length).ToUnixTimeMilliseconds();
        _intervalStart = now;
        _intervals.Report(new LatencyInterval(_measureStartedAt, start, length, sum));
    }

    private void Collect(LongHistogram sum, LongHistogram taken)
    {
        sum.Add(taken);
        taken.Reset();
        _spare = taken;
    }
}
