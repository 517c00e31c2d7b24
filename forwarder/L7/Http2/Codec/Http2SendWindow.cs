namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// The credit the peer gave this side to send DATA on a stream or on the connection (RFC 9113
/// 6.9): spent by sending, restored by WINDOW_UPDATE, moved by a change of the peer's
/// SETTINGS_INITIAL_WINDOW_SIZE (which may leave it negative). Past 2^31-1 is a FLOW_CONTROL_ERROR.
/// </summary>
internal struct Http2SendWindow(int initial)
{
    private long _available = initial;

    public readonly long Available => _available;

    /// <summary>How much of <paramref name="wanted"/> may be sent now; that much is spent.</summary>
    public int Take(int wanted)
    {
        var granted = (int)Math.Clamp(_available, 0, wanted);
        _available -= granted;
        return granted;
    }

    /// <summary>A WINDOW_UPDATE for this window (<paramref name="streamId"/> 0: the connection's).</summary>
    public void Credit(int increment, int streamId)
    {
        _available += increment;
        if (_available > Http2Frames.MaxWindowSize)
        {
            const string message = "WINDOW_UPDATE takes the window above 2^31-1";
            throw streamId == 0
                ? new Http2ConnectionException(Http2ErrorCode.FlowControlError, message)
                : new Http2StreamException(streamId, Http2ErrorCode.FlowControlError, message);
        }
    }

    /// <summary>The peer changed SETTINGS_INITIAL_WINDOW_SIZE by <paramref name="delta"/>: every stream window moves by it (RFC 9113 6.9.2).</summary>
    public void Adjust(long delta)
    {
        _available += delta;
        if (_available > Http2Frames.MaxWindowSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE takes a stream window above 2^31-1");
        }
    }
}
