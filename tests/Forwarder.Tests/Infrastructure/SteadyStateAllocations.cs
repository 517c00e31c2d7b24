using System.Diagnostics;

namespace Forwarder.Tests.Infrastructure;

/// <summary>What a steady stream of operations allocates, measured on a dedicated thread.</summary>
internal static class SteadyStateAllocations
{
    /// <summary>
    /// Runs <paramref name="run"/> once to warm up (sessions open, pools fill, tiered JIT settles),
    /// then over several windows, and returns the quietest window's bytes allocated per operation
    /// and the fastest window's operations per second. The count is process-wide: a thread the
    /// pool adds now and then allocates too, but not in every window; an allocation per operation
    /// shows in all of them.
    /// </summary>
    /// <param name="run">Performs the given number of operations; it must not allocate itself (no Assert calls inside).</param>
    public static Task<(double BytesPerOperation, double OperationsPerSecond)> MeasureAsync(Action<int> run, int windows = 5, int operations = 10_000) =>
        Task.Factory.StartNew(
            () =>
            {
                run(operations);
                var quietest = double.MaxValue;
                var fastest = 0.0;
                for (var window = 0; window < windows; window++)
                {
                    var before = GC.GetTotalAllocatedBytes(precise: true);
                    var started = Stopwatch.GetTimestamp();
                    run(operations);
                    fastest = Math.Max(fastest, operations / Stopwatch.GetElapsedTime(started).TotalSeconds);
                    quietest = Math.Min(quietest, (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)operations);
                }

                return (quietest, fastest);
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
}
