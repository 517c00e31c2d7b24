using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// The connection's deadlines, as timestamps on the tracker's clock: a header block's (from the
/// preface, or a HEADERS, until the block is whole), the idle one (no stream open for
/// keepAliveTimeout), the SETTINGS acknowledgement's, and the idle pool's trim. One timer fires
/// at the earliest; moving a deadline later costs no timer change (the timer, finding it not yet
/// passed, is set again), so requests coming and going do not touch it. A deadline that passed
/// cancels the pending read, and the reader decides (the pool's trim is done by the timer).
/// </summary>
internal sealed partial class Http2ServerConnection
{
    private readonly ITimer _timer;
    private long _headerDeadline;
    private long _idleDeadline;
    private long _settingsDeadline;

    /// <summary>When an idle connection's pool, grown by a burst, is trimmed (<see cref="Http2ServerOptions.StreamPoolExpiry"/>); 0: not due.</summary>
    private long _poolDeadline;
    private long _timerDue;

    /// <summary>After a read: a header block still incomplete keeps (or starts) its clock; with no stream open, the idle clock runs.</summary>
    private void UpdateDeadlines(in System.Buffers.ReadOnlySequence<byte> leftover)
    {
        var inHeaderBlock = !_firstBlockDone || _frames.InHeaderBlock || PartialHeaders(leftover);
        lock (_lock)
        {
            if (inHeaderBlock)
            {
                if (_headerDeadline == 0)
                {
                    _idleDeadline = 0;
                    _headerDeadline = _clock.DeadlineAfter(_options.HeaderTimeout);
                    ScheduleTimer();
                }

                return;
            }

            _headerDeadline = 0;
            if (_streams.Count > 0)
            {
                _idleDeadline = 0;
            }
            else if (_idleDeadline == 0)
            {
                _idleDeadline = _clock.DeadlineAfter(_options.KeepAliveTimeout);
                ScheduleTimer();
            }
        }
    }

    /// <summary>A frame that has partly arrived and may be (or is) a HEADERS or CONTINUATION.</summary>
    private static bool PartialHeaders(in System.Buffers.ReadOnlySequence<byte> leftover)
    {
        if (leftover.IsEmpty)
        {
            return false;
        }

        if (leftover.Length < 4)
        {
            return true;
        }

        var type = leftover.Slice(3, 1).FirstSpan[0];
        return type is Http2Frames.Headers or Http2Frames.Continuation;
    }

    /// <summary>Under the lock: the timer is due at the earliest deadline (or earlier).</summary>
    private void ScheduleTimer()
    {
        var earliest = Earliest(Earliest(Earliest(_headerDeadline, _idleDeadline), _settingsDeadline), _poolDeadline);
        if (earliest == 0 || (_timerDue != 0 && _timerDue <= earliest))
        {
            return;
        }

        _timerDue = earliest;
        _timer.Change(_clock.Until(earliest), Timeout.InfiniteTimeSpan);
    }

    private static long Earliest(long a, long b) => a == 0 ? b : b == 0 ? a : Math.Min(a, b);

    private void OnTimer()
    {
        lock (_lock)
        {
            _timerDue = 0;
            if (_closing)
            {
                return;
            }

            var now = _clock.Now;
            if (_poolDeadline != 0 && now >= _poolDeadline)
            {
                // Not a reason to wake the reader: trimmed here, unless a burst is under way again.
                _poolDeadline = 0;
                ExpirePool();
            }

            if (!Passed(now))
            {
                ScheduleTimer();
                return;
            }

            // A reader paused on a backlog reads again, and finds its read cancelled.
            WakeReader();
        }

        _input.CancelPendingRead();
    }

    private bool Passed(long now) =>
        (_headerDeadline != 0 && now >= _headerDeadline)
        || (_idleDeadline != 0 && now >= _idleDeadline)
        || (_settingsDeadline != 0 && now >= _settingsDeadline);

    /// <summary>A read was cancelled: true when the connection is to end (a deadline passed, or it drained).</summary>
    private bool DeadlinePassed()
    {
        string? reason = null;
        lock (_lock)
        {
            if (_closing)
            {
                return true;
            }

            var now = _clock.Now;
            if (_settingsDeadline != 0 && now >= _settingsDeadline)
            {
                throw new Http2ConnectionException(Http2ErrorCode.SettingsTimeout, "SETTINGS not acknowledged in time");
            }

            if (_headerDeadline != 0 && now >= _headerDeadline)
            {
                reason = "header timeout";
            }
            else if (_idleDeadline != 0 && now >= _idleDeadline && _streams.Count == 0)
            {
                reason = "idle";
            }
            else
            {
                _idleDeadline = _streams.Count > 0 ? 0 : _idleDeadline;
                ScheduleTimer();
                return false;
            }
        }

        GoAway(Http2ErrorCode.NoError, reason);
        return true;
    }
}
