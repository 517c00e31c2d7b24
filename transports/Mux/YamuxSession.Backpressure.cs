using System.Collections.Concurrent;

namespace Forwarder.Transports.Mux;

/// <summary>
/// A bound on the data frames queued for the writer. Without it a stream's pump queued as fast as
/// it could copy, up to the peer's whole window (4 MiB a stream on links), so 100 streams held
/// hundreds of megabytes of copies: arrays the pool could not keep, allocated and cleared by the
/// GC, and cold in the cache by the time they were written. Over the bound, a stream's pump waits
/// (see YamuxStream.WaitForWindowAsync), its pipe fills and its application is pushed back, as
/// a socket would push back; streams resume in the order they began to wait.
/// </summary>
public sealed partial class YamuxSession
{
    /// <summary>
    /// Queued data bytes above which streams wait: a few of the writer's batches. A bound, not a
    /// reservation: streams that find room at once each queue a frame, so it may be passed by up to
    /// a frame a stream.
    /// </summary>
    private const long QueueLimit = 4 * FlushThreshold;

    private readonly ConcurrentQueue<YamuxStream> _awaitingRoom = new();
    private long _queuedBytes;

    /// <summary>Bytes of data frames queued for the writer now.</summary>
    internal long QueuedBytes => Volatile.Read(ref _queuedBytes);

    /// <summary>Streams waiting for room now (some may have been woken and not yet taken it).</summary>
    internal int StreamsAwaitingRoom => _awaitingRoom.Count;

    /// <summary>True while a stream may queue another data frame (or the session has ended, and sending fails at once).</summary>
    internal bool HasRoom => Volatile.Read(ref _queuedBytes) < QueueLimit || Volatile.Read(ref _closed) != 0;

    /// <summary>The stream waits for room: it is woken once the writer has taken enough.</summary>
    internal void AwaitRoom(YamuxStream stream)
    {
        _awaitingRoom.Enqueue(stream);

        // The writer may have taken the queue below the bound just before the stream was queued.
        if (HasRoom)
        {
            WakeAwaitingRoom();
        }
    }

    private void Queued(long bytes) => Interlocked.Add(ref _queuedBytes, bytes);

    private void Taken(long bytes)
    {
        if (Interlocked.Add(ref _queuedBytes, -bytes) < QueueLimit && !_awaitingRoom.IsEmpty)
        {
            WakeAwaitingRoom();
        }
    }

    /// <summary>
    /// Wakes a waiting stream per frame of room: woken all at once, most would find the queue full
    /// again. Entries of streams no longer waiting take no room, so a stream that still waits is
    /// never left behind them once the writer has nothing left to take.
    /// </summary>
    private void WakeAwaitingRoom()
    {
        var room = Volatile.Read(ref _closed) != 0 ? long.MaxValue : QueueLimit - Volatile.Read(ref _queuedBytes);
        while (room > 0 && _awaitingRoom.TryDequeue(out var stream))
        {
            if (stream.OnRoom())
            {
                room -= Options.MaxFrameData;
            }
        }
    }
}
