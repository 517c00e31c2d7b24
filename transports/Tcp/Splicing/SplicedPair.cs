using System.Net.Sockets;
using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A client socket and an upstream socket joined by two flows, driven by one splicer thread.
/// It ends when both FINs have crossed (completed) or when either side fails (reset). It never
/// closes the sockets: their owner does, after <see cref="Completion"/>, so no descriptor is reused
/// while the thread might still see events for it.
/// </summary>
internal sealed class SplicedPair
{
    private readonly Socket _client;
    private readonly Socket _upstream;
    private readonly int _clientFd;
    private readonly int _upstreamFd;
    private readonly SpliceFlow _toUpstream;
    private readonly SpliceFlow _toClient;
    private readonly ISpliceObserver _observer;
    private readonly TaskCompletionSource<SpliceOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _clientReferenced;
    private readonly bool _upstreamReferenced;

    public SplicedPair(Socket client, Socket upstream, ISpliceObserver observer)
    {
        _client = client;
        _upstream = upstream;
        _observer = observer;
        client.Blocking = false;
        upstream.Blocking = false;

        // Held until the pair ends, so the descriptors stay valid even if a socket is disposed early.
        client.SafeHandle.DangerousAddRef(ref _clientReferenced);
        upstream.SafeHandle.DangerousAddRef(ref _upstreamReferenced);
        _clientFd = (int)client.SafeHandle.DangerousGetHandle();
        _upstreamFd = (int)upstream.SafeHandle.DangerousGetHandle();
        _toUpstream = new SpliceFlow(_clientFd, _upstreamFd, toUpstream: true);
        _toClient = new SpliceFlow(_upstreamFd, _clientFd, toUpstream: false);
    }

    public const uint ReadInterest = EpollIn | EpollRdHup | EpollEt;

    private const uint WriteInterest = ReadInterest | EpollOut;

    private bool _clientWatchedForWrite;
    private bool _upstreamWatchedForWrite;

    public Task<SpliceOutcome> Completion => _completion.Task;

    /// <summary>The epoll set of the thread driving this pair.</summary>
    public int Epoll { get; set; }

    public bool Closed { get; private set; }

    /// <summary>Keeps this object reachable from the epoll data word while registered.</summary>
    public GCHandle Handle { get; set; }

    public int ClientFd => _clientFd;

    public int UpstreamFd => _upstreamFd;

    /// <summary>Handles one epoll event for one of the two sockets; returns true when the pair just ended.</summary>
    public bool OnEvent(bool upstreamSide, uint events, byte[] scratch)
    {
        if (Closed)
        {
            return false;
        }

        if ((events & EpollErr) != 0)
        {
            return End(SpliceOutcome.Reset);
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

        if (!readFrom.Pump(scratch, _observer) || !writeTo.Pump(scratch, _observer))
        {
            return End(SpliceOutcome.Reset);
        }

        if (_toUpstream.Finished && _toClient.Finished)
        {
            return End(SpliceOutcome.Completed);
        }

        WatchWritability(_upstreamFd, 1, _toUpstream.Blocked, ref _upstreamWatchedForWrite);
        WatchWritability(_clientFd, 0, _toClient.Blocked, ref _clientWatchedForWrite);
        return false;
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
            watched = blocked;
            EpollModify(Epoll, fd, blocked ? WriteInterest : ReadInterest, (ulong)GCHandle.ToIntPtr(Handle) | side);
        }
    }

    private bool End(SpliceOutcome outcome)
    {
        Closed = true;
        EpollDelete(Epoll, _clientFd);
        EpollDelete(Epoll, _upstreamFd);
        _toUpstream.ReleaseBuffer();
        _toClient.ReleaseBuffer();
        if (outcome == SpliceOutcome.Reset)
        {
            // Closing with a zero linger sends RST: the reset reaches both peers.
            TrySetZeroLinger(_client);
            TrySetZeroLinger(_upstream);
        }

        if (_clientReferenced)
        {
            _client.SafeHandle.DangerousRelease();
        }

        if (_upstreamReferenced)
        {
            _upstream.SafeHandle.DangerousRelease();
        }

        _completion.TrySetResult(outcome);
        return true;
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
