using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.L7.Http2;

/// <summary>
/// The input Kestrel's HTTP/2 server reads a lent connection through. Every byte passes on
/// unchanged while <see cref="Http2FrameScanner"/> follows the frame headers, to enforce what
/// Kestrel's process-wide limits cannot: the listener's headerTimeout (from the preface, and
/// from each HEADERS frame, until its header block is complete; never while the connection idles
/// between requests), its keepAliveTimeout (from the end of the last request in flight, or of a
/// header block no request came of, until the next HEADERS frame) and the flood limits of
/// <see cref="Http2FloodLimits"/>. Past any, the guard ends the connection for Kestrel, which
/// then writes nothing more, and leaves the GOAWAY that says why to <see cref="Http2Front"/>.
/// </summary>
/// <remarks>
/// Both timeouts share the connection's one deadline: a header block and the idle clock never
/// run together. Requests end on Kestrel's threads, so every change to the deadline happens
/// under <see cref="_deadlineLock"/> (the connection's deadline has one writer at a time).
/// </remarks>
internal sealed class Http2ClientGuard : PipeReader, IHttp2FrameObserver
{
    private const int Open = -1;

    private static readonly ReadResult Ended = new(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true);

    private readonly PipeReader _inner;
    private readonly ClientConnection _client;
    private readonly ConnectionTracker _tracker;
    private readonly TimeSpan _headerTimeout;
    private readonly TimeSpan _keepAliveTimeout;
    private readonly Lock _deadlineLock = new();
    private readonly Action _endForKestrel;
    private readonly Http2FrameScanner _scanner = new(Http2Preface.Length);
    private readonly Http2FloodLimits _floods;
    private ReadOnlySequence<byte> _last;
    private long _scanned;
    private long _headerDeadline;
    private long _idleDeadline;
    private int _inFlight;
    private bool _closed;
    private volatile bool _cancelRequested;
    private volatile int _reason = Open;

    /// <param name="input">The connection's input, positioned at the preface.</param>
    /// <param name="endForKestrel">Makes Kestrel see the connection as closed (so it sends nothing more).</param>
    public Http2ClientGuard(PipeReader input, ClientConnection client, ConnectionTracker tracker, TimeSpan headerTimeout, TimeSpan keepAliveTimeout, Action endForKestrel)
    {
        _inner = input;
        _client = client;
        _tracker = tracker;
        _headerTimeout = headerTimeout;
        _keepAliveTimeout = keepAliveTimeout;
        _endForKestrel = endForKestrel;
        _floods = new Http2FloodLimits(tracker);

        // The preface is the first byte of the first request: its header block is due within headerTimeout.
        ArmHeaderDeadline();
    }

    /// <summary>Why the guard ended the connection; null while it has not.</summary>
    public Http2GoAwayReason? Reason => _reason == Open ? null : (Http2GoAwayReason)_reason;

    /// <summary>The highest stream whose request header block arrived whole: the GOAWAY's last stream.</summary>
    public int LastStreamId { get; private set; }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (_reason != Open)
        {
            return new(Ended);
        }

        var pending = _inner.ReadAsync(cancellationToken);
        if (pending.IsCompletedSuccessfully)
        {
            return TryInspect(pending.Result, out var result) ? new(result) : ReadSlowAsync(_inner.ReadAsync(cancellationToken), cancellationToken);
        }

        return ReadSlowAsync(pending, cancellationToken);
    }

    public override bool TryRead(out ReadResult result)
    {
        if (_reason != Open)
        {
            result = Ended;
            return true;
        }

        if (_inner.TryRead(out var read) && TryInspect(read, out result))
        {
            return true;
        }

        result = default;
        return false;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_reason != Open)
        {
            // The last read was released when the guard ended the connection; this is Kestrel letting go of the empty one.
            return;
        }

        _scanned -= _last.Slice(_last.Start, consumed).Length;
        _last = default;
        _inner.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead()
    {
        // Once the guard ended the connection, Kestrel's cancel (as it finishes) must not cut the front's drain short.
        if (_reason == Open)
        {
            _cancelRequested = true;
            _inner.CancelPendingRead();
        }
    }

    public override void Complete(Exception? exception = null)
    {
        // Once the guard ended the connection, the input is the front's again (to drain it behind the GOAWAY).
        if (_reason == Open)
        {
            _inner.Complete(exception);
        }
    }

    public bool FrameStarted(in Http2FrameHeader frame)
    {
        if (frame.Type == Http2Frames.Headers)
        {
            if (_headerDeadline == 0)
            {
                lock (_deadlineLock)
                {
                    // A new request (or trailers) stops the idle clock.
                    _idleDeadline = 0;
                    ArmHeaderDeadline();
                }
            }

            return true;
        }

        if (_floods.Count(frame) is { } flood)
        {
            _reason = (int)flood;
            return false;
        }

        return true;
    }

    public bool FrameEnded(in Http2FrameHeader frame)
    {
        if (frame.Type is Http2Frames.Headers or Http2Frames.Continuation && (frame.Flags & Http2Frames.EndHeaders) != 0)
        {
            LastStreamId = Math.Max(LastStreamId, frame.StreamId);
            lock (_deadlineLock)
            {
                _headerDeadline = 0;
                if (_inFlight == 0)
                {
                    // Started now as well, in case Kestrel refuses the stream and no request comes of it;
                    // the request that does come stops it again (RequestStarted).
                    ArmIdleDeadline();
                }
                else
                {
                    _client.DisarmDeadline();
                }
            }
        }

        return true;
    }

    /// <summary>Kestrel began handling a request on this connection: the connection is not idle until it ends.</summary>
    public void RequestStarted()
    {
        lock (_deadlineLock)
        {
            _inFlight++;
            if (_idleDeadline != 0)
            {
                _idleDeadline = 0;
                _client.DisarmDeadline();
            }
        }
    }

    /// <summary>Kestrel finished a request (its response ended): the last one to end starts the idle clock.</summary>
    public void RequestEnded()
    {
        lock (_deadlineLock)
        {
            if (--_inFlight == 0 && _headerDeadline == 0 && _reason == Open && !_closed)
            {
                ArmIdleDeadline();
            }
        }
    }

    /// <summary>The connection is over: a request ending late must not arm a deadline on it.</summary>
    public void Close()
    {
        lock (_deadlineLock)
        {
            _closed = true;
            _headerDeadline = 0;
            _idleDeadline = 0;
            _client.DisarmDeadline();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> ReadSlowAsync(ValueTask<ReadResult> pending, CancellationToken cancellationToken)
    {
        while (true)
        {
            var read = await pending.ConfigureAwait(false);
            if (TryInspect(read, out var result))
            {
                return result;
            }

            pending = _inner.ReadAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Scans a read's new bytes and decides what Kestrel gets: the read itself, the end of the
    /// connection (a limit was broken), or nothing (false: a cancellation left over from a
    /// deadline disarmed as it fired; read again).
    /// </summary>
    private bool TryInspect(in ReadResult read, out ReadResult result)
    {
        if (read.IsCanceled)
        {
            if (DeadlinePassed(read.Buffer) is { } passed)
            {
                result = End(passed, read.Buffer);
                return true;
            }

            if (!_cancelRequested)
            {
                _inner.AdvanceTo(read.Buffer.Start);
                result = default;
                return false;
            }

            _cancelRequested = false;
        }

        if (!_scanner.Scan(read.Buffer.Slice(_scanned), this))
        {
            result = End((Http2GoAwayReason)_reason, read.Buffer);
            return true;
        }

        _last = read.Buffer;
        _scanned = read.Buffer.Length;
        result = read;
        return true;
    }

    /// <summary>
    /// A read was cancelled: which timeout, if any, has passed. A deadline that has not (it moved
    /// on as it fired) is armed again; the idle one, found passed, ends the connection only when
    /// no request is in flight and no frame waits unread.
    /// </summary>
    private Http2GoAwayReason? DeadlinePassed(in ReadOnlySequence<byte> buffer)
    {
        lock (_deadlineLock)
        {
            var deadline = _headerDeadline != 0 ? _headerDeadline : _idleDeadline;
            if (deadline == 0)
            {
                return null;
            }

            if (!_client.DisarmDeadline())
            {
                _client.ArmDeadline(deadline, _inner);
                return null;
            }

            if (_headerDeadline != 0)
            {
                return Http2GoAwayReason.HeaderTimeout;
            }

            if (_inFlight > 0)
            {
                // A request began as the deadline fired: the last request to end starts the clock again.
                _idleDeadline = 0;
                return null;
            }

            if (buffer.Length > _scanned)
            {
                // Frames came as it fired: they are looked at first, and unless one opens a stream, the deadline fires again on the next tick.
                _client.ArmDeadline(_idleDeadline, _inner);
                return null;
            }

            return Http2GoAwayReason.Idle;
        }
    }

    private ReadResult End(Http2GoAwayReason reason, in ReadOnlySequence<byte> buffer)
    {
        lock (_deadlineLock)
        {
            _reason = (int)reason;
            _headerDeadline = 0;
            _idleDeadline = 0;
            _client.DisarmDeadline();
        }

        _inner.AdvanceTo(buffer.End);
        _endForKestrel();
        return Ended;
    }

    private void ArmIdleDeadline()
    {
        _idleDeadline = _tracker.DeadlineAfter(_keepAliveTimeout);
        _client.ArmDeadline(_idleDeadline, _inner);
    }

    private void ArmHeaderDeadline()
    {
        _headerDeadline = _tracker.DeadlineAfter(_headerTimeout);
        _client.ArmDeadline(_headerDeadline, _inner);
    }
}
