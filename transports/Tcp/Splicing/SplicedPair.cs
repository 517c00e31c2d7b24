using System.Net.Sockets;
using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A client socket and an upstream socket joined by two flows, driven by one splicer thread.
/// It ends when both FINs have crossed (completed) or when either side fails (reset). The pair
/// owns the two connections as bare descriptors of its own: the <see cref="Socket"/>s handed in
/// are closed at once (with their handles, 2 x 180 bytes an idle pair would otherwise keep), and
/// a socket counted in a <see cref="ConnectionBudget"/> stays counted until the pair closes its
/// descriptor. It closes them as it ends, on its thread and after taking them out of the epoll
/// set, and only its thread touches them (an abort is carried out there), so no descriptor is
/// reused while the pair might still act on it.
/// </summary>
internal sealed class SplicedPair : EpollTarget
{
    private readonly int _clientFd;
    private readonly int _upstreamFd;
    private readonly ConnectionBudget? _clientBudget;
    private readonly ConnectionBudget? _upstreamBudget;
    private readonly SpliceFlow _toUpstream;
    private readonly SpliceFlow _toClient;
    private readonly ISpliceObserver _observer;
    private TaskCompletionSource<SpliceOutcome>? _completion;
    private int _outcome = NotEnded;

    /// <summary>Takes both connections: on success both sockets are closed and the pair owns their descriptors; on failure the sockets are left to the caller.</summary>
    public SplicedPair(Socket client, Socket upstream, ISpliceObserver observer)
    {
        _observer = observer;
        _clientFd = Duplicate(client);
        if (_clientFd < 0)
        {
            throw new SocketException((int)ConnectError(Errno));
        }

        try
        {
            _upstreamFd = Duplicate(upstream);
            if (_upstreamFd < 0)
            {
                throw new SocketException((int)ConnectError(Errno));
            }
        }
        catch
        {
            Close(_clientFd);
            throw;
        }

        _clientBudget = BudgetedSocket.TakeBudget(client);
        _upstreamBudget = BudgetedSocket.TakeBudget(upstream);

        // The duplicates keep the connections open: closing the sockets sends nothing to the peers,
        // and .NET lets go of all it kept for them (an async context's registration included).
        client.Dispose();
        upstream.Dispose();
        _toUpstream = new SpliceFlow(this, _clientFd, _upstreamFd, toUpstream: true);
        _toClient = new SpliceFlow(this, _upstreamFd, _clientFd, toUpstream: false);
    }

    /// <summary>A non-blocking descriptor of the pair's own for the socket's connection (the flag is the connection's, shared with the socket).</summary>
    /// <exception cref="ObjectDisposedException">The socket was closed already (its number may be another's now).</exception>
    private static int Duplicate(Socket socket)
    {
        var referenced = false;
        int fd;
        try
        {
            socket.SafeHandle.DangerousAddRef(ref referenced);
            fd = LinuxSockets.Duplicate(socket.SafeHandle.DangerousGetHandle());
        }
        finally
        {
            if (referenced)
            {
                socket.SafeHandle.DangerousRelease();
            }
        }

        if (fd < 0)
        {
            return -1;
        }

        if (!MakeNonBlocking(fd))
        {
            var errno = Errno;
            Close(fd);
            Marshal.SetLastPInvokeError(errno);
            return -1;
        }

        return fd;
    }

    public const uint ReadInterest = EpollIn | EpollRdHup | EpollEt;

    private const uint WriteInterest = ReadInterest | EpollOut;

    private bool _watched;
    private bool _clientWatchedForWrite;
    private bool _upstreamWatchedForWrite;

    private const int NotEnded = -1;

    /// <summary>
    /// Made on first use: an owner told by <see cref="ISpliceObserver.Ended"/> never asks, and an
    /// idle pair then keeps no task and source (96 bytes). Each side publishes its own field with a
    /// full fence before reading the other's, so an end racing the first read cannot leave the
    /// task pending.
    /// </summary>
    public Task<SpliceOutcome> Completion
    {
        get
        {
            if (Volatile.Read(ref _completion) is { } made)
            {
                return made.Task;
            }

            var fresh = new TaskCompletionSource<SpliceOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            var completion = Interlocked.CompareExchange(ref _completion, fresh, null) ?? fresh;
            if (Volatile.Read(ref _outcome) is var outcome and not NotEnded)
            {
                completion.TrySetResult((SpliceOutcome)outcome);
            }

            return completion.Task;
        }
    }

    public ISpliceObserver Observer => _observer;

    public bool BothFinished => _toUpstream.Finished && _toClient.Finished;

    /// <summary>One FIN crossed and the other not yet; read from outside the pair's thread, so a snapshot.</summary>
    public bool HalfClosed => _toUpstream.Finished != _toClient.Finished;

    public bool Closed { get; private set; }

    /// <summary>
    /// Writability is watched only while a flow has bytes its target could not take: every ACK
    /// would otherwise raise an EPOLLOUT edge and a wake-up for nothing. The data word's low bit
    /// says which socket an event is for.
    /// </summary>
    public override bool Watch(ulong data)
    {
        if (EpollAdd(Thread.Epoll, _clientFd, ReadInterest, data) < 0 || EpollAdd(Thread.Epoll, _upstreamFd, ReadInterest, data | 1) < 0)
        {
            End(SpliceOutcome.Reset);
            return false;
        }

        _watched = true;
        Thread.Pairs++;
        return true;
    }

    public override void Cancel(Exception reason) => End(SpliceOutcome.Reset);

    /// <summary>Nothing in flight on its thread: no bytes held, no writability watched, no flow queued to run.</summary>
    public bool CanMove => !Closed && _toUpstream.Idle && _toClient.Idle && !_clientWatchedForWrite && !_upstreamWatchedForWrite;

    /// <summary>Leaves its thread's epoll set, to be handed to another thread (<see cref="SplicerThread.MoveIdlePairs"/>).</summary>
    public void Unwatch()
    {
        EpollDelete(Thread.Epoll, _clientFd);
        EpollDelete(Thread.Epoll, _upstreamFd);
        _watched = false;
        Thread.Pairs--;
    }

    /// <summary>Records what one epoll event says about one of the two sockets and queues the flows it concerns.</summary>
    public override void OnEvent(bool upstreamSide, uint events, List<SpliceFlow> ready)
    {
        if (Closed)
        {
            return;
        }

        if ((events & EpollErr) != 0)
        {
            End(SpliceOutcome.Reset);
            return;
        }

        var readFrom = upstreamSide ? _toClient : _toUpstream;
        var writeTo = upstreamSide ? _toUpstream : _toClient;
        if ((events & (EpollIn | EpollRdHup | EpollHup)) != 0)
        {
            readFrom.SourceReadable = true;
            readFrom.SourceHungUp |= (events & (EpollRdHup | EpollHup)) != 0;
        }

        if ((events & (EpollOut | EpollHup)) != 0)
        {
            writeTo.TargetWritable = true;
        }

        Queue(readFrom, ready);
        Queue(writeTo, ready);
    }

    /// <summary>After a loop's sends: ends the pair if both FINs crossed, else watches writability where bytes wait.</summary>
    public void Settle()
    {
        if (Closed)
        {
            return;
        }

        if (BothFinished)
        {
            End(SpliceOutcome.Completed);
            return;
        }

        WatchWritability(_upstreamFd, 1, _toUpstream.Blocked, ref _upstreamWatchedForWrite);
        WatchWritability(_clientFd, 0, _toClient.Blocked, ref _clientWatchedForWrite);
    }

    public void End(SpliceOutcome outcome)
    {
        if (Closed)
        {
            return;
        }

        Closed = true;
        EpollDelete(Thread.Epoll, _clientFd);
        EpollDelete(Thread.Epoll, _upstreamFd);
        _toUpstream.Release(Thread.Blocks);
        _toClient.Release(Thread.Blocks);
        if (outcome == SpliceOutcome.Reset)
        {
            // Closing with a zero linger sends RST: the reset reaches both peers.
            SetZeroLinger(_clientFd);
            SetZeroLinger(_upstreamFd);
        }

        if (_watched)
        {
            Thread.Pairs--;
        }

        Close(_clientFd);
        Close(_upstreamFd);
        _clientBudget?.Release();
        _upstreamBudget?.Release();
        Thread.Ended(this);
        Interlocked.Exchange(ref _outcome, (int)outcome);
        Volatile.Read(ref _completion)?.TrySetResult(outcome);
        _observer.Ended(outcome);
    }

    private static void Queue(SpliceFlow flow, List<SpliceFlow> ready)
    {
        if (!flow.Queued && flow.HasWork)
        {
            flow.Queued = true;
            ready.Add(flow);
        }
    }

    /// <summary>Ends the pair from any thread: its thread shuts both sockets down, and the hang-ups end the pair there.</summary>
    public void Abort() => Thread.Schedule(this);

    public override void OnScheduled()
    {
        if (!Closed)
        {
            Shutdown(_clientFd, ShutRdWr);
            Shutdown(_upstreamFd, ShutRdWr);
        }
    }

    private void WatchWritability(int fd, ulong side, bool blocked, ref bool watched)
    {
        if (blocked != watched)
        {
            if (EpollModify(Thread.Epoll, fd, blocked ? WriteInterest : ReadInterest, (ulong)GCHandle.ToIntPtr(Handle) | side) < 0)
            {
                End(SpliceOutcome.Reset);
                return;
            }

            watched = blocked;
        }
    }
}
