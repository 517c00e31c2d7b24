using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// One thread with its own edge-triggered epoll set, driving every pair assigned to it. Pairs are
/// registered from any thread (epoll_ctl is thread-safe); an eventfd wakes the thread to stop.
/// </summary>
internal sealed unsafe class SplicerThread : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeData = 0;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly int _scratchSize;
    private readonly Thread _thread;
    private volatile bool _stopping;

    public SplicerThread(string name, int scratchSize)
    {
        _scratchSize = scratchSize;
        _epoll = EpollCreate(EpollCloexec);
        if (_epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1 failed: errno {Errno}");
        }

        _wake = EventFd(0, EfdCloexec | EfdNonBlock);
        if (_wake < 0 || EpollAdd(_epoll, _wake, EpollIn, WakeData) < 0)
        {
            Close(_epoll);
            throw new InvalidOperationException($"eventfd setup failed: errno {Errno}");
        }

        _thread = new Thread(Run) { Name = name, IsBackground = true };
        _thread.Start();
    }

    public void Register(SplicedPair pair)
    {
        var handle = GCHandle.Alloc(pair);
        pair.Handle = handle;
        pair.Epoll = _epoll;
        var data = (ulong)GCHandle.ToIntPtr(handle);

        // Handles are pointer-aligned, so the low bit is free to say which socket an event is for.
        // Writability is watched only while a flow has bytes its target could not take: every
        // ACK would otherwise raise an EPOLLOUT edge and a wake-up for nothing.
        if (EpollAdd(_epoll, pair.ClientFd, SplicedPair.ReadInterest, data) < 0
            || EpollAdd(_epoll, pair.UpstreamFd, SplicedPair.ReadInterest, data | 1) < 0)
        {
            var errno = Errno;
            EpollDelete(_epoll, pair.ClientFd);
            handle.Free();
            throw new InvalidOperationException($"epoll_ctl failed: errno {errno}");
        }
    }

    public void Dispose()
    {
        _stopping = true;
        ulong one = 1;
        Write(_wake, (byte*)&one, sizeof(ulong));
        _thread.Join();
        Close(_wake);
        Close(_epoll);
    }

    private void Run()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(EventSize * MaxEvents));
        var scratch = GC.AllocateUninitializedArray<byte>(_scratchSize, pinned: true);
        var ended = new List<SplicedPair>();
        try
        {
            while (!_stopping)
            {
                var count = EpollWait(_epoll, events, MaxEvents, -1);
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
                        continue;
                    }

                    var pair = (SplicedPair)GCHandle.FromIntPtr((nint)(data & ~1UL)).Target!;
                    if (pair.OnEvent((data & 1) != 0, flags, scratch))
                    {
                        ended.Add(pair);
                    }
                }

                // Freed only after the batch: a later event in it may still name an ended pair.
                foreach (var pair in ended)
                {
                    pair.Handle.Free();
                }

                ended.Clear();
            }
        }
        finally
        {
            NativeMemory.Free(events);
        }
    }
}
