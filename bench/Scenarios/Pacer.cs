using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// Wakes waiters at Stopwatch timestamps with tens of microseconds of precision, where timers and
/// Task.Delay have a millisecond's. One thread sleeps (nanosleep) until the earliest deadline, at
/// most <see cref="MaxSleep"/> at a time so a newly added earlier deadline is not missed by much.
/// </summary>
internal sealed partial class Pacer : IDisposable
{
    private static readonly long MaxSleep = Stopwatch.Frequency / 2000;

    /// <summary>A deadline this close is treated as due: cheaper than a wake-up, and well under what we measure.</summary>
    private static readonly long Slack = Stopwatch.Frequency / 50_000;

    private readonly PriorityQueue<PacedWaiter, long> _queue = new();
    private readonly Lock _lock = new();
    private readonly Thread _thread;
    private volatile bool _stopped;

    public Pacer()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "bench-pacer" };
        _thread.Start();
    }

    /// <summary>Completes at <paramref name="dueTimestamp"/>, or at once if it has passed.</summary>
    public ValueTask WaitUntilAsync(PacedWaiter waiter, long dueTimestamp)
    {
        if (Stopwatch.GetTimestamp() >= dueTimestamp - Slack || _stopped)
        {
            return ValueTask.CompletedTask;
        }

        var task = waiter.Arm();
        lock (_lock)
        {
            _queue.Enqueue(waiter, dueTimestamp);
        }

        return task;
    }

    public void Dispose()
    {
        _stopped = true;
        _thread.Join();
        lock (_lock)
        {
            while (_queue.TryDequeue(out var waiter, out _))
            {
                waiter.Fire();
            }
        }
    }

    private void Run()
    {
        // Linux lets a sleeping thread wake up to 50 us late (timer slack) to batch wake-ups;
        // the pacer's whole point is to wake on time.
        _ = SetTimerSlack(PrSetTimerSlack, 1, 0, 0, 0);
        List<PacedWaiter> due = [];
        while (!_stopped)
        {
            var now = Stopwatch.GetTimestamp();
            var next = now + MaxSleep;
            lock (_lock)
            {
                while (_queue.TryPeek(out var waiter, out var deadline))
                {
                    if (deadline - Slack > now)
                    {
                        next = Math.Min(next, deadline);
                        break;
                    }

                    _queue.Dequeue();
                    due.Add(waiter);
                }
            }

            foreach (var waiter in due)
            {
                waiter.Fire();
            }

            due.Clear();
            Sleep(next - Stopwatch.GetTimestamp());
        }
    }

    private static void Sleep(long ticks)
    {
        if (ticks <= 0)
        {
            return;
        }

        var nanoseconds = ticks * 1_000_000_000 / Stopwatch.Frequency;
        var request = new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
        NanoSleep(ref request, IntPtr.Zero);
    }

    private const int PrSetTimerSlack = 29;

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int SetTimerSlack(int option, nuint slack, nuint unused2, nuint unused3, nuint unused4);

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(ref TimeSpec request, IntPtr remaining);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}

/// <summary>A reusable wait on the <see cref="Pacer"/>, one per worker so waiting does not allocate.</summary>
internal sealed class PacedWaiter : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

    public ValueTask Arm()
    {
        _core.Reset();
        return new ValueTask(this, _core.Version);
    }

    public void Fire() => _core.SetResult(true);

    public void GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
