using System.Net.Sockets;
using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A client socket and an upstream socket joined by two flows, driven by one splicer thread.
/// It ends when both FINs have crossed (completed) or when either side fails (reset). The sockets
/// are the pair's: it closes them as it ends, on its thread and after taking them out of the epoll
/// set, so no descriptor is reused while the thread might still act on it (an event for it left in
/// the loop finds the pair closed).
/// </summary>
internal sealed class SplicedPair : EpollTarget
{
    private readonly Socket _client;
    private readonly Socket _upstream;
    private readonly int _clientFd;
    private readonly int _upstreamFd;
    private readonly SpliceFlow _toUpstream;
    private readonly SpliceFlow _toClient;
    private readonly ISpliceObserver _observer;
    private readonly TaskCompletionSource<SpliceOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _clientReferenced;
    private bool _upstreamReferenced;

    public SplicedPair(Socket client, Socket upstream, ISpliceObserver observer)
    {
        _client = client;
        _upstream = upstream;
        _observer = observer;

        // Held until the pair ends, so a descriptor cannot be closed and reused while the splicer
        // thread may still act on it (by an abort's shutdown racing the end, say).
        client.SafeHandle.DangerousAddRef(ref _clientReferenced);
        try
        {
            upstream.SafeHandle.DangerousAddRef(ref _upstreamReferenced);
            _clientFd = (int)client.SafeHandle.DangerousGetHandle();
            _upstreamFd = (int)upstream.SafeHandle.DangerousGetHandle();
            if (!MakeNonBlocking(client, _clientFd) || !MakeNonBlocking(upstream, _upstreamFd))
            {
                throw new SocketException(Errno);
            }
        }
        catch
        {
            ReleaseReferences();
            throw;
        }

        _toUpstream = new SpliceFlow(this, _clientFd, _upstreamFd, toUpstream: true);
        _toClient = new SpliceFlow(this, _upstreamFd, _clientFd, toUpstream: false);
    }

    public const uint ReadInterest = EpollIn | EpollRdHup | EpollEt;

    private const uint WriteInterest = ReadInterest | EpollOut;

    private bool _clientWatchedForWrite;
    private bool _upstreamWatchedForWrite;

    public Task<SpliceOutcome> Completion => _completion.Task;

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

        return true;
    }

    public override void Cancel(Exception reason) => End(SpliceOutcome.Reset);

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
            TrySetZeroLinger(_client);
            TrySetZeroLinger(_upstream);
        }

        ReleaseReferences();
        _client.Dispose();
        _upstream.Dispose();
        Thread.Ended(this);
        _completion.TrySetResult(outcome);
    }

    private void ReleaseReferences()
    {
        if (_clientReferenced)
        {
            _client.SafeHandle.DangerousRelease();
        }

        if (_upstreamReferenced)
        {
            _upstream.SafeHandle.DangerousRelease();
        }
    }

    private static void Queue(SpliceFlow flow, List<SpliceFlow> ready)
    {
        if (!flow.Queued && flow.HasWork)
        {
            flow.Queued = true;
            ready.Add(flow);
        }
    }

    /// <summary>Ends the pair from outside its thread: both sockets see a hang-up and the pair finishes on its own thread.</summary>
    public void Abort()
    {
        TryShutdown(_client);
        TryShutdown(_upstream);
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

    private static void TryShutdown(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone: nothing to wake.
        }
    }

    private static void TrySetZeroLinger(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone: it can send nothing more.
        }
    }
}
