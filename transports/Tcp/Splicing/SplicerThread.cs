using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// One thread with its own edge-triggered epoll set, driving every pair assigned to it. Each loop
/// collects the ready flows, lets all of them read, then lets all of them send. Other threads
/// hand pairs over through a queue and an eventfd; the thread itself adds them to its epoll set,
/// so nothing about a pair changes under its feet.
/// </summary>
internal sealed unsafe class SplicerThread : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeData = 0;

    private readonly int _wake;
    private readonly Thread _thread;
    private readonly ConcurrentQueue<EpollTarget> _incoming = new();
    private readonly ConcurrentQueue<(EpollTarget Target, Exception Reason)> _cancellations = new();
    private readonly ConcurrentQueue<EpollTarget> _scheduled = new();
    private readonly ConcurrentQueue<(TaskCompletionSource<int> Done, bool IdleOnly)> _trims = new();
    private readonly List<EpollTarget> _ended = [];
    private readonly HashSet<EpollTarget> _live = [];
    private readonly List<SplicedPair> _moving = [];
    private volatile bool _stopping;
    private volatile bool _poked;

    public SplicerThread(string name, int blockSize)
    {
        Blocks = new BlockStack(blockSize);
        Epoll = EpollCreate(EpollCloexec);
        if (Epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1 failed: errno {Errno}");
        }

        _wake = EventFd(0, EfdCloexec | EfdNonBlock);
        if (_wake < 0 || EpollAdd(Epoll, _wake, EpollIn, WakeData) < 0)
        {
            var errno = Errno;
            if (_wake >= 0)
            {
                Close(_wake);
            }

            Close(Epoll);
            throw new InvalidOperationException($"eventfd setup failed: errno {errno}");
        }

        // Nothing of the creator's execution context belongs on this thread.
        _thread = new Thread(Run) { Name = name, IsBackground = true };
        _thread.UnsafeStart();
    }

    public int Epoll { get; }

    /// <summary>Pairs splicing on this thread; written only by it, so read from outside it a snapshot.</summary>
    public int Pairs { get; set; }

    /// <summary>Buffers for bytes between a read and their send; touched only by this thread.</summary>
    public BlockStack Blocks { get; }

    /// <summary>Set before any pair is handed over, when this thread is one of a primary and its spare.</summary>
    public Spillover? Spillover { get; set; }

    /// <summary>When <see cref="Spillover"/> looks at this thread next (ms, TickCount64); touched only by this thread.</summary>
    public long NextCheck { get; set; }

    /// <summary>
    /// Pairs were left to move at the last check: the thread waits at most until the next one
    /// rather than for an event an idle set may never get. Touched only by this thread.
    /// </summary>
    public bool MovesPending { get; set; }

    /// <summary>Asked to stop: pairs handed to it now would not be taken in; callable from any thread.</summary>
    public bool Stopping => _stopping;

    /// <summary>Hands a pair or a pending connect to this thread; callable from any thread.</summary>
    public void Register(EpollTarget target)
    {
        _incoming.Enqueue(target);
        Wake();
    }

    /// <summary>Asks the thread to end a target early; callable from any thread, a no-op if it already ended.</summary>
    public void Cancel(EpollTarget target, Exception reason)
    {
        _cancellations.Enqueue((target, reason));
        Wake();
    }

    /// <summary>Has the thread call the target's <see cref="EpollTarget.OnScheduled"/>; callable from any thread.</summary>
    public void Schedule(EpollTarget target)
    {
        _scheduled.Enqueue(target);
        Wake();
    }

    /// <summary>
    /// Has the thread let go of its idle blocks (<paramref name="idleOnly"/>: only those idle since
    /// the last such call, <see cref="BlockStack.TrimIdle"/>); completes with how many. Callable from any thread.
    /// </summary>
    public Task<int> TrimAsync(bool idleOnly = false)
    {
        if (_stopping)
        {
            return Task.FromResult(0);
        }

        var trimmed = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _trims.Enqueue((trimmed, idleOnly));
        Wake();
        return trimmed.Task;
    }

    /// <summary>Called by a target as it ends; its handle is freed once the current loop is over.</summary>
    public void Ended(EpollTarget target)
    {
        _ended.Add(target);
        _live.Remove(target);
    }

    /// <summary>Has the thread run its <see cref="Spillover"/> check now rather than at the next interval; callable from any thread.</summary>
    public void Poke()
    {
        _poked = true;
        Wake();
    }

    /// <summary>
    /// Hands idle spliced pairs to <paramref name="to"/> until this thread keeps <paramref name="keep"/>,
    /// at most <paramref name="max"/> of them; on this thread, between loops. A pair leaves this
    /// epoll set before it joins the other, which reports on adding whatever arrived in between, so
    /// no edge is lost. Nothing moves to a stopping thread: this one ends its pairs as it stops.
    /// Returns whether it stopped at <paramref name="max"/> with pairs left to move.
    /// </summary>
    public bool MoveIdlePairs(SplicerThread to, int keep, int max)
    {
        if (to.Stopping)
        {
            return false;
        }

        var capped = false;
        foreach (var target in _live)
        {
            if (Pairs - _moving.Count <= keep)
            {
                break;
            }

            if (_moving.Count == max)
            {
                capped = true;
                break;
            }

            if (target is SplicedPair { CanMove: true } pair)
            {
                _moving.Add(pair);
            }
        }

        foreach (var pair in _moving)
        {
            pair.Unwatch();
            _live.Remove(pair);
            pair.Handle.Free();
            pair.Thread = to;
            to.Register(pair);
        }

        _moving.Clear();
        return capped;
    }

    /// <summary>Asks the thread to stop, without waiting: with <see cref="Join"/>, lets a splicer stop all its threads before any descriptor closes.</summary>
    public void Stop()
    {
        _stopping = true;
        Wake();
    }

    /// <summary>Waits for the thread to end; after <see cref="Stop"/>.</summary>
    public void Join() => _thread.Join();

    /// <summary>Stops and joins the thread if that was not done, then closes its descriptors.</summary>
    public void Dispose()
    {
        Stop();
        Join();
        Close(_wake);
        Close(Epoll);
    }

    /// <summary>Ends what was handed over and not taken in; once the thread ended, for a pair moved to it as it stopped.</summary>
    public void CancelIncoming()
    {
        var stopped = new ObjectDisposedException(nameof(SocketSplicer));
        while (_incoming.TryDequeue(out var target))
        {
            target.Thread = this;
            target.Cancel(stopped);
        }
    }

    private void Run()
    {
        // Sessions resume inline on this thread. With flow suppressed here, and sessions started
        // without a context (ListenerHost), their state machines capture none when they suspend
        // and resume straight on, not through ExecutionContext.Run each time.
        using var noContext = ExecutionContext.SuppressFlow();
        var events = (byte*)NativeMemory.Alloc((nuint)(EventSize * MaxEvents));
        var ready = new List<SpliceFlow>();
        var again = new List<SpliceFlow>();
        try
        {
            while (!_stopping)
            {
                // Flows that filled a whole block may have more to read: poll without sleeping.
                var count = EpollWait(Epoll, events, MaxEvents, ready.Count > 0 ? 0 : MovesPending ? Spillover.CheckIntervalMs : -1);
                if (count < 0)
                {
                    if (Errno == EIntr)
                    {
                        continue;
                    }

                    throw new InvalidOperationException($"epoll_wait failed: errno {Errno}");
                }

                for (var i = 0; i < count; i++)
                {
                    var flags = *(uint*)(events + (i * EventSize));
                    var data = *(ulong*)(events + (i * EventSize) + EventDataOffset);
                    if (data == WakeData)
                    {
                        TakeRequests();
                    }
                    else
                    {
                        // Only targets are registered under a handle: no need to check the cast.
                        var target = Unsafe.As<EpollTarget>(GCHandle.FromIntPtr((nint)(data & ~1UL)).Target!);
                        target.OnEvent((data & 1) != 0, flags, ready);
                    }
                }

                RunFlows(ready, again);
                (ready, again) = (again, ready);
                again.Clear();

                // Freed only now: an event earlier in this loop may have named an ended target.
                foreach (var target in _ended)
                {
                    target.Handle.Free();
                }

                _ended.Clear();
                if (Spillover is { } spillover)
                {
                    var poked = _poked;
                    _poked = false;
                    spillover.AfterLoop(this, poked);
                }
            }
        }
        finally
        {
            // Stopping: whatever is still watched ends now, so its owner's wait ends too.
            var stopped = new ObjectDisposedException(nameof(SocketSplicer));
            foreach (var target in _live.ToArray())
            {
                target.Cancel(stopped);
                target.Handle.Free();
            }

            CancelIncoming();
            while (_trims.TryDequeue(out var trim))
            {
                trim.Done.TrySetResult(0);
            }

            NativeMemory.Free(events);
        }
    }

    private void Wake()
    {
        ulong one = 1;
        Write(_wake, (byte*)&one, sizeof(ulong));
    }

    /// <summary>Takes in handed-over targets, then carries out cancellations (which may name them).</summary>
    private void TakeRequests()
    {
        ulong counter;
        Read(_wake, (byte*)&counter, sizeof(ulong));
        while (_incoming.TryDequeue(out var target))
        {
            target.Thread = this;
            target.Handle = GCHandle.Alloc(target);
            _live.Add(target);

            // Handles are pointer-aligned, so the low bit of the data word is free for the target.
            target.Watch((ulong)GCHandle.ToIntPtr(target.Handle));
        }

        while (_scheduled.TryDequeue(out var scheduled))
        {
            // Asked of the thread a pair was on before it moved: the one it is on now carries it out,
            // unless it is stopping, which ends the pair anyway (and may have closed its eventfd).
            if (scheduled is SplicedPair { Thread: var owner } && owner != this)
            {
                if (!owner.Stopping)
                {
                    owner.Schedule(scheduled);
                }
            }
            else
            {
                scheduled.OnScheduled();
            }
        }

        while (_cancellations.TryDequeue(out var cancellation))
        {
            cancellation.Target.Cancel(cancellation.Reason);
        }

        while (_trims.TryDequeue(out var trim))
        {
            trim.Done.TrySetResult(trim.IdleOnly ? Blocks.TrimIdle() : Blocks.Trim());
        }
    }

    private void RunFlows(List<SpliceFlow> ready, List<SpliceFlow> again)
    {
        foreach (var flow in ready)
        {
            if (!flow.Pair.Closed && !flow.ReadOnce(Blocks))
            {
                flow.Pair.End(SpliceOutcome.Reset);
            }
        }

        foreach (var flow in ready)
        {
            if (!flow.Pair.Closed && !flow.Flush(Blocks))
            {
                flow.Pair.End(SpliceOutcome.Reset);
            }
        }

        foreach (var flow in ready)
        {
            flow.Queued = false;
            flow.Pair.Settle();
            if (!flow.Pair.Closed && flow.HasWork)
            {
                flow.Queued = true;
                again.Add(flow);
            }
        }
    }
}
