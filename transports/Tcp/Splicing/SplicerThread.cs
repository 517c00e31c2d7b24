using System.Collections.Concurrent;
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
    private readonly ConcurrentQueue<SplicedPair> _incoming = new();
    private readonly List<SplicedPair> _ended = [];
    private readonly HashSet<SplicedPair> _live = [];
    private volatile bool _stopping;

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

        _thread = new Thread(Run) { Name = name, IsBackground = true };
        _thread.Start();
    }

    public int Epoll { get; }

    /// <summary>Buffers for bytes between a read and their send; touched only by this thread.</summary>
    public BlockStack Blocks { get; }

    /// <summary>Hands a pair to this thread; callable from any thread.</summary>
    public void Register(SplicedPair pair)
    {
        _incoming.Enqueue(pair);
        Wake();
    }

    /// <summary>Called by a pair as it ends; its handle is freed once the current loop is over.</summary>
    public void Ended(SplicedPair pair)
    {
        _ended.Add(pair);
        _live.Remove(pair);
    }

    public void Dispose()
    {
        _stopping = true;
        Wake();
        _thread.Join();
        Close(_wake);
        Close(Epoll);
    }

    private void Run()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(EventSize * MaxEvents));
        var ready = new List<SpliceFlow>();
        var again = new List<SpliceFlow>();
        try
        {
            while (!_stopping)
            {
                // Flows that filled a whole block may have more to read: poll without sleeping.
                var count = EpollWait(Epoll, events, MaxEvents, ready.Count > 0 ? 0 : -1);
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
                        AddIncoming();
                    }
                    else
                    {
                        var pair = (SplicedPair)GCHandle.FromIntPtr((nint)(data & ~1UL)).Target!;
                        pair.OnEvent((data & 1) != 0, flags, ready);
                    }
                }

                RunFlows(ready, again);
                (ready, again) = (again, ready);
                again.Clear();

                // Freed only now: an event earlier in this loop may have named an ended pair.
                foreach (var pair in _ended)
                {
                    pair.Handle.Free();
                }

                _ended.Clear();
            }
        }
        finally
        {
            // Stopping: whatever is still spliced is reset, so its owner's wait ends too.
            foreach (var pair in _live.ToArray())
            {
                pair.End(SpliceOutcome.Reset);
                pair.Handle.Free();
            }

            while (_incoming.TryDequeue(out var pair))
            {
                pair.Thread = this;
                pair.End(SpliceOutcome.Reset);
            }

            NativeMemory.Free(events);
        }
    }

    private void Wake()
    {
        ulong one = 1;
        Write(_wake, (byte*)&one, sizeof(ulong));
    }

    /// <summary>
    /// Adds handed-over pairs to the epoll set. Handles are pointer-aligned, so the low bit of the
    /// data word is free to say which socket an event is for. Writability is watched only while a
    /// flow has bytes its target could not take: every ACK would otherwise raise an EPOLLOUT edge.
    /// </summary>
    private void AddIncoming()
    {
        ulong counter;
        Read(_wake, (byte*)&counter, sizeof(ulong));
        while (_incoming.TryDequeue(out var pair))
        {
            pair.Thread = this;
            pair.Handle = GCHandle.Alloc(pair);
            _live.Add(pair);
            var data = (ulong)GCHandle.ToIntPtr(pair.Handle);
            if (EpollAdd(Epoll, pair.ClientFd, SplicedPair.ReadInterest, data) < 0
                || EpollAdd(Epoll, pair.UpstreamFd, SplicedPair.ReadInterest, data | 1) < 0)
            {
                pair.End(SpliceOutcome.Reset);
            }
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
