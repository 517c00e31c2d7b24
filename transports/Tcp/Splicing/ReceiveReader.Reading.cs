using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;

namespace Forwarder.Transports.Tcp.Splicing;

/// <content>The reader's side: reads that return at once or wait, AdvanceTo, cancellation and completion.</content>
internal sealed partial class ReceiveReader
{
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
}
