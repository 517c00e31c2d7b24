using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The connection's clock: our SETTINGS must be acknowledged in time (RFC 9113 6.5.3), a quiet
/// connection is pinged and dropped if the ping goes unanswered, and one without streams for the
/// idle timeout is closed. Pings also measure the round trip.
/// </summary>
internal sealed partial class Http2ClientConnection
{
    private ITimer? _timer;
    private long _settingsSentAt;
    private bool _settingsAcked;
    private long _idleSince;
    private long _pingSentAt;
    private ulong _pingPayload;
    private TaskCompletionSource<TimeSpan>? _ping;

    /// <summary>The last measured round trip (a PING and its ACK), or null before the first.</summary>
    public TimeSpan? RoundTripTime { get; private set; }

    /// <summary>Sends a PING (or joins the one in flight) and completes with the round trip.</summary>
    public Task<TimeSpan> PingAsync()
    {
        Task<TimeSpan> answer;
        lock (_gate)
        {
            if (_closed)
            {
                return Task.FromException<TimeSpan>(Failure ?? new Http2ClientException("The upstream connection has closed.", Http2ErrorCode.ConnectError, canRetry: false));
            }

            _ping ??= new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
            answer = _ping.Task;
            if (_pingSentAt == 0)
            {
                SendPing();
            }
        }

        Flush();
        return answer;
    }

    /// <summary>
    /// Ends the connection from outside the reader: the reason is kept, the reader is woken, and it
    /// fails the streams and sends GOAWAY <paramref name="code"/> (none when null: the connection is gone).
    /// </summary>
    private void Abort(Exception? reason, Http2ErrorCode? code)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _draining = true;
            _pendingAbort ??= new PendingAbort(reason, code);
        }

        _input.CancelPendingRead();
    }

    private void StartTimer()
    {
        var shortest = new[] { _options.SettingsTimeout, _options.PingInterval, _options.PingTimeout, _options.IdleTimeout }.Min();
        var period = TimeSpan.FromTicks(Math.Clamp(shortest.Ticks / 4, TimeSpan.TicksPerMillisecond * 10, TimeSpan.TicksPerSecond));
        _timer = _options.Time.CreateTimer(static state => ((Http2ClientConnection)state!).Tick(), this, period, period);
    }

    private void StopTimer() => _timer?.Dispose();

    private void Tick()
    {
        var time = _options.Time;
        var now = time.GetTimestamp();
        Exception? reason = null;
        Http2ErrorCode? code = null;
        lock (_gate)
        {
            if (_closed || _pendingAbort is not null)
            {
                return;
            }

            if (!_settingsAcked && time.GetElapsedTime(_settingsSentAt, now) > _options.SettingsTimeout)
            {
                reason = new Http2ClientException("The server did not acknowledge SETTINGS in time.", Http2ErrorCode.SettingsTimeout, canRetry: false);
                code = Http2ErrorCode.SettingsTimeout;
            }
            else if (_pingSentAt != 0 && time.GetElapsedTime(_pingSentAt, now) > _options.PingTimeout)
            {
                reason = new Http2ClientException("The server did not answer a PING in time.", Http2ErrorCode.ConnectError, canRetry: false);
                code = Http2ErrorCode.NoError;
            }
            else if (_active == 0 && !_draining && time.GetElapsedTime(_idleSince, now) > _options.IdleTimeout)
            {
                code = Http2ErrorCode.NoError;
            }
            else if (_pingSentAt == 0 && time.GetElapsedTime(Volatile.Read(ref _lastRead), now) > _options.PingInterval)
            {
                SendPing();
            }
        }

        if (code is not null)
        {
            Abort(reason, code);
        }
        else
        {
            Flush();
        }
    }

    /// <summary>Under the lock.</summary>
    private void SendPing()
    {
        _pingSentAt = _options.Time.GetTimestamp();
        _pingPayload = (ulong)_pingSentAt;
        Http2FrameWriter.WritePing(Out, _pingPayload, ack: false);
    }

    /// <summary>A PING ACK came (<paramref name="payload"/>), or the connection ended (null): the ping in flight is settled.</summary>
    private void PingAnswered(ulong? payload)
    {
        TaskCompletionSource<TimeSpan>? waiter;
        TimeSpan rtt = default;
        lock (_gate)
        {
            if (payload is { } data)
            {
                if (_pingSentAt == 0 || data != _pingPayload)
                {
                    return;
                }

                rtt = _options.Time.GetElapsedTime(_pingSentAt);
                RoundTripTime = rtt;
            }

            _pingSentAt = 0;
            waiter = _ping;
            _ping = null;
        }

        if (payload is null)
        {
            waiter?.TrySetException(Failure ?? new Http2ClientException("The upstream connection closed.", Http2ErrorCode.ConnectError, canRetry: false));
        }
        else
        {
            waiter?.TrySetResult(rtt);
        }
    }
}
