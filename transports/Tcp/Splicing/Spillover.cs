using System.Runtime.CompilerServices;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A spare splicer thread for a node with one I/O thread by default. While the primary thread
/// waits for a CPU most of the time it wants one (an overloaded node: 30-50 runnable tasks of
/// other work on two cores), new pairs are spread over both threads and the primary hands half
/// of its idle pairs to the spare, so a stall of one thread holds half the connections and the
/// kernel can run both on two cores. Once the primary gets its CPU again, the spare hands its
/// pairs back: on a busy but not overloaded node one thread measured faster than two
/// (perf-reports/busy-node, 2026-12-07 and 2026-12-08). Only spliced pairs move, and only idle
/// ones (nothing read and not yet sent, no writability watched, not queued to run).
/// </summary>
/// <param name="meterFailed">Told once, on the primary's thread, if its schedstat cannot be read: the spare then stays unused.</param>
internal sealed class Spillover(SplicerThread primary, SplicerThread spare, Action<Exception>? meterFailed) : IDisposable
{
    public const int CheckIntervalMs = 250;

    // Two epoll_ctl calls per pair: a cap keeps one check from stalling a starved primary (20k
    // pairs would be 40k calls in one pass); the rest move at the following checks.
    public const int MaxMovesPerCheck = 256;

    // Made on the primary thread, whose schedstat it reads.
    private ContentionMeter? _meter;

    private volatile bool _contended;

    // Written by a test's thread, read by the primary's.
    private volatile StrongBox<bool>? _forced;

    /// <summary>New pairs go to both threads: the primary is contended.</summary>
    public bool Contended => _contended;

    /// <summary>
    /// Pins the state instead of measuring it (tests), or with null measures again; callable from
    /// any thread. Only the primary is poked: it takes the state on as if measured, and the spare
    /// learns of the end of contention the way it does of a measured one.
    /// </summary>
    internal void Force(bool? contended)
    {
        _forced = contended is { } value ? new StrongBox<bool>(value) : null;
        primary.Poke();
    }

    /// <summary>Runs on <paramref name="thread"/> after each loop; does something at most every 250 ms of its loops.</summary>
    public void AfterLoop(SplicerThread thread, bool poked)
    {
        var now = Environment.TickCount64;
        if (!poked && now < thread.NextCheck)
        {
            return;
        }

        thread.NextCheck = now + CheckIntervalMs;
        if (thread == primary)
        {
            _meter ??= new ContentionMeter(meterFailed);
            var measured = _meter.Sample();
            var was = _contended;
            _contended = _forced is { } forced ? forced.Value : measured;
            if (_contended)
            {
                // Half of all pairs each; the spare's count is a snapshot, good enough for a share.
                thread.MovesPending = thread.MoveIdlePairs(spare, (thread.Pairs + spare.Pairs + 1) / 2, MaxMovesPerCheck);
            }
            else
            {
                thread.MovesPending = false;
                if (was)
                {
                    // The spare may be idle in epoll_wait with pairs to hand back: it checks now.
                    spare.Poke();
                }
            }
        }
        else if (!_contended && thread.Pairs > 0)
        {
            thread.MovesPending = thread.MoveIdlePairs(primary, 0, MaxMovesPerCheck);
        }
        else
        {
            thread.MovesPending = false;
        }
    }

    /// <summary>Once both threads ended.</summary>
    public void Dispose() => _meter?.Dispose();
}
