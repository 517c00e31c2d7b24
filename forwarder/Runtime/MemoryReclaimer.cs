using System.Buffers;
using System.Runtime;
using Forwarder.Metrics;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// Gives memory back after a peak of connections (see <see cref="MemoryReclaimPolicy"/>): every
/// <see cref="Interval"/> the block pools let go of the blocks no rent reached since the last
/// sample, and it samples the open connections and the managed heap's committed bytes (as of the
/// last collection: the pinned block pools live there too); when the policy says so, the pools let
/// all their idle blocks go and a full, compacting, decommitting collection returns the freed
/// memory to the system.
/// </summary>
internal sealed partial class MemoryReclaimer(
    ConnectionTracker tracker,
    ForwarderMetrics metrics,
    MemoryPool<byte> pool,
    SocketSplicer? splicer,
    TimeProvider time,
    ILogger<MemoryReclaimer> logger) : IHostedService, IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private const long Mebi = 1024 * 1024;

    private readonly MemoryReclaimPolicy _policy = new();
    private readonly SettlePolicy _settle = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _sampling = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _policy.Begin(CommittedBytes());
        _sampling = SampleAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _sampling.ConfigureAwait(false);
    }

    public void Dispose() => _stopping.Dispose();

    /// <summary>
    /// Once the process has started: what start-up allocated (the config's YAML tree, the hosts'
    /// builders, the admin warm-up's requests) is garbage, and with nothing allocating while idle
    /// no collection would ever run to give its few MB back; the executable's and the libraries'
    /// pages start-up alone read are let go too (<see cref="CodePages"/>). Growth is counted from what is left.
    /// </summary>
    public void ReleaseStartupMemory()
    {
        var started = time.GetTimestamp();
        var resident = Environment.WorkingSet;
        CollectAndDecommit();
        var (unmapped, written) = CodePages.Release();
        _policy.Begin(CommittedBytes());
        _settle.Begin(GC.GetTotalAllocatedBytes());
        LogStartupReleased(logger, resident / Mebi, Environment.WorkingSet / Mebi, unmapped / Mebi, written / 1024, CommittedBytes() / Mebi, time.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>Lets the pools' idle blocks go, then collects and decommits; returns the committed bytes before and after.</summary>
    public async Task<(long Before, long After)> ReclaimAsync(CancellationToken cancellationToken)
    {
        var before = CommittedBytes();
        if (pool is PinnedBlockMemoryPool pinned)
        {
            pinned.Trim();
        }

        if (splicer is not null)
        {
            await splicer.TrimAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        CollectAndDecommit();
        return (before, CommittedBytes());
    }

    /// <summary>
    /// Quiet again after some work (<see cref="SettlePolicy"/>): what start-up's release let go and
    /// the work brought back (gen0 memory it allocated, code and tables it ran once) goes again.
    /// </summary>
    private void Settle()
    {
        var started = time.GetTimestamp();
        var resident = Environment.WorkingSet;
        CollectAndDecommit();
        CodePages.Release();
        _settle.Released(GC.GetTotalAllocatedBytes(), time.GetTimestamp(), settled: true);
        LogSettled(logger, resident / Mebi, Environment.WorkingSet / Mebi, time.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>Has the pools let go of the blocks idle since the last call; returns their bytes.</summary>
    private async Task<long> TrimIdleAsync(CancellationToken cancellationToken)
    {
        var released = pool is PinnedBlockMemoryPool pinned ? (long)pinned.TrimIdle() * pinned.MaxBufferSize : 0;
        if (splicer is not null)
        {
            released += (long)await splicer.TrimAsync(idleOnly: true).WaitAsync(cancellationToken).ConfigureAwait(false) * splicer.BlockSize;
        }

        return released;
    }

    /// <summary>
    /// Aggressive: compacts every generation (the pinned object heap's free blocks included) and
    /// decommits all the free space it can instead of keeping it for later allocations.
    /// </summary>
    private static void CollectAndDecommit()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private static long CommittedBytes() => GC.GetGCMemoryInfo().TotalCommittedBytes;

    private async Task SampleAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                var released = await TrimIdleAsync(cancellationToken).ConfigureAwait(false);
                var connections = tracker.Count;
                if (!_policy.ShouldReclaim(connections, CommittedBytes(), released, time.GetTimestamp(), time.TimestampFrequency))
                {
                    if (_settle.ShouldSettle(GC.GetTotalAllocatedBytes(), metrics.BytesForwarded, time.GetTimestamp(), time.TimestampFrequency))
                    {
                        Settle();
                    }

                    continue;
                }

                var started = time.GetTimestamp();
                var resident = Environment.WorkingSet;
                var (before, after) = await ReclaimAsync(cancellationToken).ConfigureAwait(false);

                // The pages of code and tables the peak read (accepting, connecting, splicing
                // thousands: 2-2.5 MiB of the binary's read-only data and libc) go too. The
                // collection resets the settle's count of work, so no settle would let them go
                // until more work came (after 8,000 idle connections closed, 4-5 MiB stayed resident).
                CodePages.Release();
                _policy.Reclaimed(tracker.Count, after, time.GetTimestamp());
                _settle.Released(GC.GetTotalAllocatedBytes(), time.GetTimestamp(), settled: true);
                LogReclaimed(logger, connections, before / Mebi, after / Mebi, resident / Mebi, Environment.WorkingSet / Mebi, time.GetElapsedTime(started).TotalMilliseconds);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    [LoggerMessage(EventId = 130, Level = LogLevel.Information, Message = "Memory reclaimed after a peak of connections ({Connections} open now): managed heap committed {BeforeMiB} MiB -> {AfterMiB} MiB, resident {ResidentBeforeMiB} MiB -> {ResidentAfterMiB} MiB, in {Ms:F1} ms")]
    private static partial void LogReclaimed(ILogger logger, int connections, long beforeMiB, long afterMiB, long residentBeforeMiB, long residentAfterMiB, double ms);

    [LoggerMessage(EventId = 132, Level = LogLevel.Debug, Message = "Quiet after work: resident {BeforeMiB} MiB -> {AfterMiB} MiB in {Ms:F1} ms")]
    private static partial void LogSettled(ILogger logger, long beforeMiB, long afterMiB, double ms);

    [LoggerMessage(EventId = 131, Level = LogLevel.Information, Message = "Start-up memory released: resident {BeforeMiB} MiB -> {AfterMiB} MiB ({UnmappedMiB} MiB of the executable's and libraries' read-only pages unmapped, {WrittenKiB} KiB it had written kept; managed heap committed {CommittedMiB} MiB) in {Ms:F1} ms")]
    private static partial void LogStartupReleased(ILogger logger, long beforeMiB, long afterMiB, long unmappedMiB, long writtenKiB, long committedMiB, double ms);
}
