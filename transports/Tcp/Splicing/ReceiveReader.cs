using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// The input of an <see cref="EpollConnection"/>: what the epoll thread receives, for one reader.
/// It does what a <see cref="Pipe"/> with inline schedulers does for this one case, in a fraction of
/// the memory a request touches: its state lives in this object (no separate pipe, reader, writer
/// and lock objects), received blocks are chained without copying, and a waiting reader is resumed
/// inline on the thread that received. With hundreds of connections, every object a request touches
/// is a likely cache miss, so that is where the time goes.
/// </summary>
/// <remarks>
/// One producer (the epoll thread: <see cref="GetReceiveMemory"/>, <see cref="Commit"/>,
/// <see cref="CompleteWriter"/>) and one reader at a time, on any thread; the state is guarded by
/// this object's monitor, and continuations run outside it. Blocks go back to the pool once
/// consumed, and all of them once both sides are done, never while the producer may still write.
/// </remarks>
internal sealed partial class ReceiveReader : PipeReader, IValueTaskSource<ReadResult>
{
    private readonly MemoryPool<byte> _pool;
    private readonly long _pauseThreshold;
    private readonly long _resumeThreshold;
    private readonly Action _resumeReceiving;
    private ManualResetValueTaskSourceCore<ReadResult> _pendingRead;
    private CancellationTokenRegistration _pendingReadCancellation;

    private Segment? _head;
    private int _headIndex;
    private Segment? _tail;
    private Segment? _spare;
    private long _buffered;

    /// <summary>The reader has looked at everything up to here (counted from the first byte received): a read returns at once only with more than that.</summary>
    private long _examinedEnd;
    private long _consumedTotal;

    private bool _readPending;
    private bool _readInProgress;
    private bool _cancelNextRead;
    private bool _writerCompleted;
    private Exception? _writerError;
    private bool _readerCompleted;
    private bool _paused;

    /// <summary>The producer holds memory from <see cref="GetReceiveMemory"/>: its block must stay.</summary>
    private bool _producerWriting;

    /// <param name="resumeReceiving">Called (on the reader's thread) when a paused producer may receive again.</param>
    public ReceiveReader(MemoryPool<byte> pool, long pauseThreshold, Action resumeReceiving)
    {
        _pool = pool;
        _pauseThreshold = pauseThreshold;
        _resumeThreshold = pauseThreshold / 2;
        _resumeReceiving = resumeReceiving;
    }

    /// <summary>What <see cref="Commit"/> asks of the producer.</summary>
    public enum CommitResult
    {
        /// <summary>Receive on.</summary>
        Continue,

        /// <summary>The reader is behind by the pause threshold: stop until told to resume.</summary>
        Pause,

        /// <summary>The reader is gone: stop receiving and complete the writing side.</summary>
        ReaderCompleted,
    }

    /// <summary>Producer: room to receive into, at least <paramref name="minimumSize"/> bytes; <see cref="Commit"/> must follow.</summary>
    public Memory<byte> GetReceiveMemory(int minimumSize)
    {
        lock (this)
        {
            _producerWriting = true;
            if (_tail is { } tail && tail.Block.Memory.Length - tail.Length >= minimumSize)
            {
                return tail.Block.Memory[tail.Length..];
            }

            var segment = _spare ?? new Segment();
            _spare = segment.NextSpare;
            segment.NextSpare = null;
            segment.Reset(_pool.Rent(), _consumedTotal + _buffered);
            if (_tail is null)
            {
                _head = segment;
                _headIndex = 0;
            }
            else
            {
                _tail.SetNext(segment);
            }

            _tail = segment;
            return segment.Block.Memory;
        }
    }

    /// <summary>
    /// Producer: <paramref name="bytes"/> (perhaps none) were received into the memory last handed
    /// out; a waiting read is resumed, inline, before this returns.
    /// </summary>
    public CommitResult Commit(int bytes)
    {
        Completion completion = default;
        CommitResult result;
        lock (this)
        {
            _producerWriting = false;
            if (_readerCompleted)
            {
                return CommitResult.ReaderCompleted;
            }

            if (bytes == 0)
            {
                RecycleIfEmpty();
                return _paused ? CommitResult.Pause : CommitResult.Continue;
            }

            _tail!.Grow(bytes);
            _buffered += bytes;
            if (_readPending && _consumedTotal + _buffered > _examinedEnd)
            {
                completion = TakePendingRead();
            }

            _paused = _buffered >= _pauseThreshold;
            result = _paused ? CommitResult.Pause : CommitResult.Continue;
        }

        completion.Run(ref _pendingRead);
        return result;
    }

    /// <summary>Producer: nothing more will be received (<paramref name="error"/> when the connection failed); also ends a <see cref="GetReceiveMemory"/> that got nothing.</summary>
    public void CompleteWriter(Exception? error)
    {
        Completion completion = default;
        lock (this)
        {
            if (_writerCompleted)
            {
                return;
            }

            _writerCompleted = true;
            _producerWriting = false;
            _writerError = error;
            if (_readPending)
            {
                completion = TakePendingRead();
            }

            ReleaseIfDone();
        }

        completion.Run(ref _pendingRead);
    }
}
