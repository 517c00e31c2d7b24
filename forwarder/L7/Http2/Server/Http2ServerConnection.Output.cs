using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// The connection's output: control frames and response heads queue in <see cref="_control"/>;
/// streams with response body wait in <see cref="_ready"/>. The writer takes all control frames,
/// then one DATA frame per ready stream in turn (round robin, so one large response does not hold
/// back the others) as the windows allow, up to <see cref="BatchSize"/>, and flushes them with one
/// write. Trailers and END_STREAM follow a stream's last data.
/// </summary>
internal sealed partial class Http2ServerConnection
{
    private const int BatchSize = 64 * 1024;

    /// <summary>
    /// Output queued in <see cref="_control"/> past which the reader takes no more frames and no
    /// whole response is queued, until the writer has moved it on: a client that does not read
    /// then stalls its own requests, not the proxy's memory. A batch, so whole responses (written
    /// ahead of the round robin) skip ahead of the streams' data by at most one batch.
    /// </summary>
    private const int ControlBacklogLimit = BatchSize;

    /// <summary><see cref="_control"/>'s initial capacity; one grown past <see cref="ControlKeepCapacity"/> by a burst is replaced once drained.</summary>
    private const int ControlInitialCapacity = 4096;

    private const int ControlKeepCapacity = BatchSize;

    private ArrayBufferWriter<byte> _control = new(ControlInitialCapacity);
    private TaskCompletionSource? _controlDrained;
    private readonly ArrayBufferWriter<byte> _headerScratch = new(1024);
    private readonly Queue<Http2ServerStream> _ready = new();
    private readonly Http2WriteSignal _signal = new();
    private bool _batching;
    private bool _flushWanted;
    private bool _flushQueued;
    private bool _goAwaySent;
    private volatile bool _closing;

    internal void WriteResponseHeaders(Http2ServerStream stream, int status, Http2HeaderFields? headers, bool endStream)
    {
        lock (_lock)
        {
            if (!stream.Active || stream.LocalClosed)
            {
                return;
            }

            if (stream.HeadersSent)
            {
                throw new InvalidOperationException($"stream {stream.Id}'s response head was written already");
            }

            // An interim head (100 Continue) ends nothing: the final head follows (RFC 9113 8.1).
            var interim = status < 200;
            if (interim && (endStream || headers is { Count: > 0 }))
            {
                throw new InvalidOperationException($"stream {stream.Id}: an interim {status} head is sent bare, without END_STREAM");
            }

            WriteHead(stream.Id, status, headers, endStream);
            stream.HeadersSent = !interim;
            if (endStream)
            {
                stream.Ending = stream.LocalClosed = true;
                TryClose(stream);
            }

            RequestFlush();
        }

        FlushIfWanted();
    }

    internal void ResponseDataQueued(Http2ServerStream stream)
    {
        lock (_lock)
        {
            if (!stream.HeadersSent && stream.Active)
            {
                throw new InvalidOperationException($"stream {stream.Id}'s body written before its head");
            }

            Enqueue(stream);
        }

        FlushIfWanted();
    }

    internal void CompleteResponse(Http2ServerStream stream, Http2HeaderFields? trailers)
    {
        lock (_lock)
        {
            if (!stream.Active || stream.LocalClosed || stream.Ending)
            {
                return;
            }

            if (!stream.HeadersSent)
            {
                throw new InvalidOperationException($"stream {stream.Id} completed before its head was written");
            }

            if (trailers is { Count: > 0 })
            {
                _encoder.BeginBlock(stream.Trailers);
                EncodeFields(trailers, stream.Trailers);
            }

            stream.Ending = true;
            Enqueue(stream);
        }

        FlushIfWanted();
    }

    /// <summary>Under the lock: a response head (:status, then <paramref name="headers"/>) as a HEADERS block into the control queue.</summary>
    private void WriteHead(int id, int status, Http2HeaderFields? headers, bool endStream)
    {
        _headerScratch.ResetWrittenCount();
        _encoder.BeginBlock(_headerScratch);
        Span<byte> digits = stackalloc byte[3];
        digits[0] = (byte)('0' + (status / 100 % 10));
        digits[1] = (byte)('0' + (status / 10 % 10));
        digits[2] = (byte)('0' + (status % 10));
        _encoder.Encode(":status"u8, digits, _headerScratch);
        EncodeFields(headers, _headerScratch);
        Http2FrameWriter.WriteHeaders(_control, id, _headerScratch.WrittenSpan, endStream, _peerMaxFrameSize);
    }

    private void EncodeFields(Http2HeaderFields? fields, IBufferWriter<byte> output)
    {
        for (var i = 0; i < (fields?.Count ?? 0); i++)
        {
            _encoder.Encode(fields!.Name(i), fields.Value(i), output);
        }
    }

    /// <summary>Under the lock: the stream has body, an end, or window again.</summary>
    private void Enqueue(Http2ServerStream stream)
    {
        if (stream.Active && !stream.LocalClosed && !stream.Queued && stream.HeadersSent)
        {
            stream.Queued = true;
            _ready.Enqueue(stream);
            RequestFlush();
        }
    }

    /// <summary>Under the lock: output is waiting. The writer is woken once the lock is let go (never inside it).</summary>
    private void RequestFlush() => _flushWanted = true;

    /// <summary>Wakes the writer if output waits, unless the reader is amid a read (it wakes the writer once at its end).</summary>
    private void FlushIfWanted()
    {
        lock (_lock)
        {
            if (!_flushWanted || _batching || _flushQueued)
            {
                return;
            }

            if (_options.CoalesceHandlerWrites)
            {
                // Off the reader's batch: a handler answering from elsewhere (an upstream
                // connection's reader, answering many streams in one read). One flush is queued
                // for all that they write before it runs, instead of one write each.
                _flushQueued = true;
                ThreadPool.UnsafeQueueUserWorkItem(static connection => connection.FlushQueued(), this, preferLocal: true);
                return;
            }

            _flushWanted = false;
        }

        _signal.Set();
    }

    private void FlushQueued()
    {
        lock (_lock)
        {
            _flushQueued = false;
            if (!_flushWanted || _batching)
            {
                return;
            }

            _flushWanted = false;
        }

        _signal.Set();
    }

    private void GoAway(Http2ErrorCode code, string? message)
    {
        lock (_lock)
        {
            if (_goAwaySent && code == Http2ErrorCode.NoError)
            {
                return;
            }

            var debug = message is null ? [] : System.Text.Encoding.ASCII.GetBytes(message);
            Http2FrameWriter.WriteGoAway(_control, _lastStreamId, code, debug);
            _goAwaySent = true;
            GoAwayCode = code;
            RequestFlush();
            if (_streams.Count == 0 || code != Http2ErrorCode.NoError)
            {
                Drained();
            }
        }

        FlushIfWanted();
    }

    /// <summary>
    /// The control queue is over its limit: the reader stops applying frames until the writer has
    /// taken it. Read without the lock (once a frame): a stale count only moves the pause by a frame.
    /// </summary>
    private bool ControlBacklogged => _control.WrittenCount > ControlBacklogLimit;

    /// <summary>Completes once the control queue is under its limit again, or a deadline passed, or the connection is closing.</summary>
    private Task ControlDrainedAsync()
    {
        lock (_lock)
        {
            if (_closing || _control.WrittenCount <= ControlBacklogLimit)
            {
                return Task.CompletedTask;
            }

            _controlDrained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _controlDrained.Task;
        }
    }

    /// <summary>Under the lock: wakes a reader waiting for the control queue to drain.</summary>
    private void WakeReader()
    {
        _controlDrained?.TrySetResult();
        _controlDrained = null;
    }

    /// <summary>Under the lock: nothing more will be served; the reader stops at its next read.</summary>
    private void Drained()
    {
        if (_closing)
        {
            return;
        }

        _closing = true;
        WakeReader();
        RequestFlush();
        ThreadPool.UnsafeQueueUserWorkItem(static input => input.CancelPendingRead(), _input, preferLocal: false);
    }

    /// <summary>The reader is done: every stream still open is aborted, and the writer sends what is queued (a GOAWAY, say) and stops.</summary>
    private void Close()
    {
        lock (_lock)
        {
            _closing = true;
            WakeReader();
            foreach (var stream in _streams.Values.ToArray())
            {
                AbortStream(stream);
            }

            while (_ready.TryDequeue(out var stream))
            {
                stream.Queued = false;
                TryRecycle(stream);
            }
        }

        _signal.Set();
    }
}
