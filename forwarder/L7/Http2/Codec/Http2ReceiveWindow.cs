namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// The credit this side gave the peer to send DATA on a stream or on the connection (RFC 9113
/// 6.9): DATA beyond it is a FLOW_CONTROL_ERROR. Credit comes back as the data is consumed, in
/// WINDOW_UPDATEs of at least half the window so the peer is not sent one per frame; but at once
/// while the peer has less than a quarter left, so data nobody reads yet (a connection's stalled
/// streams) does not also hold back the credit of what was read.
/// </summary>
internal struct Http2ReceiveWindow(int size)
{
    private long _available = size;
    private int _unacknowledged;

    public readonly long Available => _available;

    /// <summary>A DATA frame arrived: <paramref name="length"/> is its whole flow-controlled length, padding included.</summary>
    public void Receive(int length, int streamId)
    {
        _available -= length;
        if (_available < 0)
        {
            const string message = "DATA beyond the flow-control window";
            throw streamId == 0
                ? new Http2ConnectionException(Http2ErrorCode.FlowControlError, message)
                : new Http2StreamException(streamId, Http2ErrorCode.FlowControlError, message);
        }
    }

    /// <summary>The application took <paramref name="length"/> bytes: the increment to send now, or 0 to wait for more.</summary>
    public int Consume(int length)
    {
        _unacknowledged += length;
        if (_unacknowledged < size / 2 && _available >= size / 4)
        {
            return 0;
        }

        var increment = _unacknowledged;
        _unacknowledged = 0;
        _available += increment;
        return increment;
    }
}
