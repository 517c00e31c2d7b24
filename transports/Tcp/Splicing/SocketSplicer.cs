using System.Net;
using System.Net.Sockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Forwards between two TCP sockets the way HAProxy does: a few threads, each with an
/// edge-triggered epoll set; each loop reads every ready socket once into a pooled block, then
/// sends every block on. Two system calls per chunk, no thread hop, no buffer held while a
/// connection is idle, no allocation. Linux only.
/// </summary>
public sealed class SocketSplicer : IDisposable
{
    private readonly SplicerThread[] _threads;
    private readonly SplicerThread[] _all;
    private readonly Spillover? _spillover;
    private uint _next;

    /// <param name="threads">Threads to spread pairs over (like HAProxy's nbthread).</param>
    /// <param name="blockSize">Bytes read at once, into blocks each thread pools for itself.</param>
    /// <param name="spillover">
    /// With one thread: keep a spare that takes half the spliced pairs while the thread waits for
    /// a CPU most of the time (an overloaded node), see <see cref="Spillover"/>.
    /// </param>
    /// <param name="meterFailed">Told once if the spillover cannot measure contention (the spare then stays unused), to log it.</param>
    public SocketSplicer(int threads, int blockSize = 64 * 1024, bool spillover = false, Action<Exception>? meterFailed = null)
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("The socket splicer needs Linux's epoll.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        BlockSize = blockSize;
        _threads = new SplicerThread[threads];
        for (var i = 0; i < threads; i++)
        {
            _threads[i] = new SplicerThread($"splicer-{i}", blockSize);
        }

        _all = _threads;
        if (spillover && threads == 1)
        {
            var spare = new SplicerThread("splicer-spare", blockSize);
            _spillover = new Spillover(_threads[0], spare, meterFailed);
            spare.Spillover = _spillover;
            _threads[0].Spillover = _spillover;
            _all = [_threads[0], spare];
        }
    }

    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>Bytes in each block the threads read into.</summary>
    public int BlockSize { get; }

    /// <summary>
    /// Joins the two sockets' connections until both have sent their FIN or either fails. The
    /// connections become the splice's: the two sockets are closed when this returns (it keeps
    /// descriptors of its own, closed, with RST after a reset, by the time its completion is set),
    /// and at once if they cannot be spliced. Nothing of the caller's needs to wait for the
    /// splice, so an idle pair costs no async frame.
    /// </summary>
    public SplicedConnection Splice(Socket client, Socket upstream, ISpliceObserver observer)
    {
        SplicedPair pair;
        try
        {
            pair = new SplicedPair(client, upstream, observer);
        }
        catch
        {
            client.Dispose();
            upstream.Dispose();
            throw;
        }

        // Known before the thread takes it in: an abort right after this returns goes to that thread.
        var thread = PairThread();
        pair.Thread = thread;
        thread.Register(pair);
        return new SplicedConnection(pair);
    }

    /// <summary>
    /// Connects <paramref name="socket"/> without .NET's socket engine ever watching it, so that
    /// once spliced, its events wake only the splicer. Cancelling closes nothing: the caller
    /// disposes the socket after the returned task ends, however it ends.
    /// </summary>
    /// <remarks>
    /// connect(2) on the descriptor, not <c>Socket.Connect</c>: a .NET socket made non-blocking
    /// gets a SocketAsyncContext (152 bytes, with its locks and queues) that a spliced socket
    /// carries for its whole life and never uses. The socket then does not know it is connected:
    /// its LocalEndPoint and RemoteEndPoint are null.
    /// </remarks>
    public async ValueTask ConnectAsync(Socket socket, EndPoint endpoint, CancellationToken cancellationToken)
    {
        if (!TryConnect(socket, endpoint))
        {
            return;
        }

        var pending = new PendingConnect(socket);
        var thread = PairThread();
        thread.Register(pending);
        using (cancellationToken.Register(() => thread.Cancel(pending, new OperationCanceledException(cancellationToken))))
        {
            await pending.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>Starts the connect; false if it completed at once, true if it is under way.</summary>
    private static bool TryConnect(Socket socket, EndPoint endpoint)
    {
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        if (!LinuxSockets.MakeNonBlocking(fd))
        {
            throw new SocketException((int)SocketError.SocketError);
        }

        if (LinuxSockets.Connect(fd, endpoint.Serialize()) == 0)
        {
            return false;
        }

        var errno = LinuxSockets.Errno;
        return errno is LinuxSockets.EInProgress or LinuxSockets.EIntr ? true : throw new SocketException((int)LinuxSockets.ConnectError(errno));
    }

    /// <summary>
    /// Has every thread let go of the blocks it keeps for reads (after a peak of traffic, for the
    /// GC to take back; <paramref name="idleOnly"/>: only those idle since the last such call);
    /// completes with how many went. Blocks in use stay where they are.
    /// </summary>
    public async Task<int> TrimAsync(bool idleOnly = false)
    {
        var trimmed = await Task.WhenAll(_all.Select(t => t.TrimAsync(idleOnly))).ConfigureAwait(false);
        return trimmed.Sum();
    }

    /// <summary>Blocks holding bytes read and not yet sent, over all threads; read from outside their threads, so a snapshot.</summary>
    internal int BlocksOutstanding => _all.Sum(t => t.Blocks.Outstanding);

    /// <summary>Pairs splicing now, over all threads; read from outside their threads, so a snapshot.</summary>
    internal int PairsSplicing => _all.Sum(t => t.Pairs);

    /// <summary>Pairs on the spare thread (a snapshot), 0 without one.</summary>
    internal int PairsOnSpare => _all.Length > _threads.Length ? _all[^1].Pairs : 0;

    /// <summary>Pins the spillover's state (true: contended), or with null measures it again.</summary>
    internal void ForceContention(bool? contended) =>
        (_spillover ?? throw new InvalidOperationException("This splicer has no spare thread.")).Force(contended);

    /// <summary>Hands a target to the next thread, which takes it in; returns that thread.</summary>
    internal SplicerThread Register(EpollTarget target)
    {
        var thread = NextThread();
        thread.Register(target);
        return thread;
    }

    private SplicerThread NextThread() => _threads[Interlocked.Increment(ref _next) % (uint)_threads.Length];

    /// <summary>For a spliced pair or its connect: the spare takes every other one while the primary is contended.</summary>
    private SplicerThread PairThread() =>
        _spillover is { Contended: true } ? _all[Interlocked.Increment(ref _next) % (uint)_all.Length] : NextThread();

    public void Dispose()
    {
        // Every thread stops and ends before any descriptor closes: a thread still running may
        // hand a pair to, or wake, another (a spare handing back, an abort redirected after a move).
        foreach (var thread in _all)
        {
            thread.Stop();
        }

        foreach (var thread in _all)
        {
            thread.Join();
        }

        foreach (var thread in _all)
        {
            thread.Dispose();
        }

        // A pair one thread moved to another as that one stopped: nobody takes it in now.
        foreach (var thread in _all)
        {
            thread.CancelIncoming();
        }

        _spillover?.Dispose();
    }
}

/// <summary>A running splice: await it, or abort it from any thread.</summary>
public readonly struct SplicedConnection
{
    private readonly SplicedPair _pair;

    internal SplicedConnection(SplicedPair pair) => _pair = pair;

    public Task<SpliceOutcome> Completion => _pair.Completion;

    /// <summary>One side's FIN was passed on and the other side has not sent its own (a snapshot, from any thread).</summary>
    public bool HalfClosed => _pair.HalfClosed;

    /// <summary>Shuts both sockets down; the splice then ends on its own thread.</summary>
    public void Abort() => _pair.Abort();
}
