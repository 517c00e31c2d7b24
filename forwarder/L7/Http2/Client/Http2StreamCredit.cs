using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The receive side of one upstream stream (RFC 9113 6.9): what the server may still send, and
/// what it sent that the caller has not consumed yet (the body pipe). Their sum, the stream's
/// capacity, is the most the stream can make this side buffer. The stream opens with the window
/// SETTINGS announced and is topped up towards its full window as its body is consumed.
/// </summary>
internal struct Http2StreamCredit(int initial)
{
    private long _available = initial;
    private long _unread;

    /// <summary>What the server may still send.</summary>
    public readonly long Available => _available;

    /// <summary>Received and not consumed yet.</summary>
    public readonly long Unread => _unread;

    /// <summary>What the stream can make this side buffer: credit the server still has, and what it sent unread.</summary>
    public readonly long Capacity => _available + _unread;

    /// <summary>A DATA frame arrived: <paramref name="length"/> is its whole flow-controlled length, padding included.</summary>
    public void Receive(int length, int streamId)
    {
        _available -= length;
        if (_available < 0)
        {
            throw new Http2StreamException(streamId, Http2ErrorCode.FlowControlError, "DATA beyond the flow-control window");
        }

        _unread += length;
    }

    public void Consume(int length) => _unread -= length;

    /// <summary>
    /// The increment that brings the capacity back to <paramref name="window"/>, or 0 while it is
    /// under half the window and the server has a quarter left: WINDOW_UPDATEs are not sent per frame.
    /// </summary>
    public readonly long Due(int window)
    {
        var owed = window - Capacity;
        return owed > 0 && (owed >= window / 2 || _available < window / 4) ? owed : 0;
    }

    public void Credit(long increment) => _available += increment;
}
