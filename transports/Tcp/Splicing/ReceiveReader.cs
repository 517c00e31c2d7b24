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
internal sealed class ReceiveReader : PipeReader, IValueTaskSource<ReadResult>
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

    public override bool TryRead(out ReadResult result)
    {
        lock (this)
        {
            ThrowIfReadNotAllowed();
            if (_cancelNextRead || _writerCompleted || _consumedTotal + _buffered > _examinedEnd)
            {
                result = TakeResult();
                return true;
            }
        }

        result = default;
        return false;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        lock (this)
        {
            ThrowIfReadNotAllowed();
            if (_cancelNextRead || _writerCompleted || _consumedTotal + _buffered > _examinedEnd)
            {
                return new ValueTask<ReadResult>(TakeResult());
            }

            cancellationToken.ThrowIfCancellationRequested();
            _pendingRead.Reset();
            _readPending = true;
            if (cancellationToken.CanBeCanceled)
            {
                _pendingReadCancellation = cancellationToken.UnsafeRegister(static (s, token) => ((ReceiveReader)s!).CancelRead(token), this);
            }

            return new ValueTask<ReadResult>(this, _pendingRead.Version);
        }
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        var resume = false;
        lock (this)
        {
            if (!_readInProgress)
            {
                throw new InvalidOperationException("AdvanceTo was called without a read to advance.");
            }

            _readInProgress = false;
            if (_head is null)
            {
                _examinedEnd = _consumedTotal;
                return;
            }

            var consumedSegment = (Segment?)consumed.GetObject() ?? _head;
            var consumedAt = consumedSegment.RunningIndex + consumed.GetInteger();
            var examinedSegment = (Segment?)examined.GetObject() ?? _head;
            var examinedAt = examinedSegment.RunningIndex + examined.GetInteger();
            var start = _head.RunningIndex + _headIndex;
            if (consumedAt < start || examinedAt < consumedAt || examinedAt > _consumedTotal + _buffered)
            {
                throw new InvalidOperationException("The positions given to AdvanceTo are outside the buffer last read.");
            }

            // Examined to the end means "not enough yet": the next read waits for new bytes.
            _examinedEnd = examinedAt;
            var count = consumedAt - start;
            _buffered -= count;
            _consumedTotal += count;

            // Fully consumed blocks go back to the pool; the tail stays while the producer may fill it.
            while (_head != _tail && _head!.RunningIndex + _head.Length <= consumedAt)
            {
                var done = _head;
                _head = (Segment)done.Next!;
                Recycle(done);
            }

            _headIndex = (int)(consumedAt - _head!.RunningIndex);
            RecycleIfEmpty();

            if (_paused && _buffered < _resumeThreshold)
            {
                _paused = false;
                resume = true;
            }
        }

        if (resume)
        {
            _resumeReceiving();
        }
    }

    public override void CancelPendingRead()
    {
        Completion completion = default;
        lock (this)
        {
            _cancelNextRead = true;
            if (_readPending)
            {
                completion = TakePendingRead();
            }
        }

        completion.Run(ref _pendingRead);
    }

    public override void Complete(Exception? exception = null)
    {
        var resume = false;
        lock (this)
        {
            if (_readerCompleted)
            {
                return;
            }

            _readerCompleted = true;
            _readInProgress = false;
            resume = _paused;
            _paused = false;
            ReleaseIfDone();
        }

        if (resume)
        {
            // A paused producer learns from its next commit that nobody reads any more.
            _resumeReceiving();
        }
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _pendingRead.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _pendingRead.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _pendingRead.OnCompleted(continuation, state, token, flags & ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext);

    private void CancelRead(CancellationToken token)
    {
        lock (this)
        {
            if (!_readPending)
            {
                return;
            }

            _readPending = false;
            _pendingReadCancellation = default;
        }

        _pendingRead.SetException(new OperationCanceledException(token));
    }

    /// <summary>Under the monitor: ends the waiting read with what it will return, to be delivered once the monitor is released.</summary>
    private Completion TakePendingRead()
    {
        _readPending = false;

        // Unregister, not Dispose: that could wait for a running callback, which takes this monitor.
        _pendingReadCancellation.Unregister();
        _pendingReadCancellation = default;
        try
        {
            return new Completion(TakeResult(), null);
        }
        catch (Exception ex)
        {
            return new Completion(default, ex);
        }
    }

    /// <summary>Under the monitor: the buffer as it stands, and the read in progress until AdvanceTo.</summary>
    private ReadResult TakeResult()
    {
        var canceled = _cancelNextRead;
        _cancelNextRead = false;
        if (_writerError is { } error && !canceled)
        {
            throw error;
        }

        _readInProgress = true;
        var buffer = _head is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_head, _headIndex, _tail!, _tail!.Length);
        return new ReadResult(buffer, canceled, _writerCompleted);
    }

    private void ThrowIfReadNotAllowed()
    {
        if (_readerCompleted)
        {
            throw new InvalidOperationException("Reading is not allowed after the reader was completed.");
        }

        if (_readInProgress || _readPending)
        {
            throw new InvalidOperationException("A read is already in progress; AdvanceTo must come first.");
        }
    }

    private void Recycle(Segment segment)
    {
        segment.Block.Dispose();
        segment.Clear();
        segment.NextSpare = _spare;
        _spare = segment;
    }

    /// <summary>
    /// Under the monitor: with everything consumed and the producer not writing, the blocks go back
    /// to the pool, so an idle connection holds none.
    /// </summary>
    private void RecycleIfEmpty()
    {
        if (_buffered != 0 || _producerWriting || _readInProgress)
        {
            return;
        }

        while (_head is { } segment)
        {
            _head = (Segment?)segment.Next;
            Recycle(segment);
        }

        _tail = null;
        _headIndex = 0;
    }

    /// <summary>Under the monitor: once both sides are done, every block goes back.</summary>
    private void ReleaseIfDone()
    {
        if (!_readerCompleted || !_writerCompleted)
        {
            return;
        }

        for (var segment = _head; segment is not null; segment = (Segment?)segment.Next)
        {
            segment.Block.Dispose();
        }

        _head = _tail = null;
        _buffered = 0;
    }

    /// <summary>A waiting read's outcome, delivered outside the monitor (its continuation runs inline).</summary>
    private readonly struct Completion(ReadResult result, Exception? error)
    {
        private readonly bool _due = true;

        public void Run(ref ManualResetValueTaskSourceCore<ReadResult> source)
        {
            if (!_due)
            {
                return;
            }

            if (error is null)
            {
                source.SetResult(result);
            }
            else
            {
                source.SetException(error);
            }
        }
    }

    /// <summary>A received block in the chain a read returns.</summary>
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public IMemoryOwner<byte> Block { get; private set; } = null!;

        public int Length { get; private set; }

        public Segment? NextSpare { get; set; }

        public void Reset(IMemoryOwner<byte> block, long runningIndex)
        {
            Block = block;
            Length = 0;
            RunningIndex = runningIndex;
            Memory = default;
            Next = null;
        }

        public void Grow(int bytes)
        {
            Length += bytes;
            Memory = Block.Memory[..Length];
        }

        public void SetNext(Segment next) => Next = next;

        public void Clear()
        {
            Block = null!;
            Memory = default;
            Next = null;
        }
    }
}
