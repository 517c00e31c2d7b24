using Forwarder.L7.Http2.Codec;

namespace Forwarder.Tests.L7.Http2.Codec;

public sealed class Http2FlowWindowTests
{
    [Fact]
    public void Take_MoreThanAvailable_GrantsWhatIsLeftThenNothing()
    {
        var window = new Http2SendWindow(100);

        Assert.Equal(60, window.Take(60));
        Assert.Equal(40, window.Take(60));
        Assert.Equal(0, window.Take(60));
        window.Credit(10, 1);
        Assert.Equal(10, window.Take(60));
    }

    [Fact]
    public void Credit_AboveMaxWindow_StreamOrConnectionFlowControlError()
    {
        var stream = new Http2SendWindow(Http2Frames.MaxWindowSize);
        var connection = new Http2SendWindow(Http2Frames.MaxWindowSize);

        var streamError = Assert.Throws<Http2StreamException>(() => stream.Credit(1, 3));
        var connectionError = Assert.Throws<Http2ConnectionException>(() => connection.Credit(1, 0));

        Assert.Equal((3, Http2ErrorCode.FlowControlError), (streamError.StreamId, streamError.Code));
        Assert.Equal(Http2ErrorCode.FlowControlError, connectionError.Code);
    }

    [Fact]
    public void Adjust_SmallerInitialWindow_GoesNegativeAndBlocksUntilCredited()
    {
        var window = new Http2SendWindow(65_535);
        window.Take(60_000);

        window.Adjust(16_384 - 65_535);

        Assert.Equal(5_535 - 49_151, window.Available);
        Assert.Equal(0, window.Take(1));
        window.Credit(43_617, 1);
        Assert.Equal(1, window.Take(10));
    }

    [Fact]
    public void Receive_BeyondWindow_FlowControlError()
    {
        var window = new Http2ReceiveWindow(100);
        window.Receive(100, 5);

        var error = Assert.Throws<Http2StreamException>(() => window.Receive(1, 5));

        Assert.Equal(Http2ErrorCode.FlowControlError, error.Code);
    }

    [Fact]
    public void Consume_UpdatesOnlyOnceHalfTheWindowIsConsumed()
    {
        var window = new Http2ReceiveWindow(100);
        window.Receive(60, 0);

        Assert.Equal(0, window.Consume(30));
        Assert.Equal(50, window.Consume(20));
        Assert.Equal(90, window.Available);
        Assert.Equal(0, window.Consume(9));
    }

    [Fact]
    public void Consume_PeerHasLessThanAQuarterLeft_UpdatesAtOnce()
    {
        var window = new Http2ReceiveWindow(100);

        // 80 in, most of it nobody reads yet: what is read goes back at once.
        window.Receive(80, 0);

        Assert.Equal(10, window.Consume(10));
        Assert.Equal(30, window.Available);
        Assert.Equal(0, window.Consume(10));
    }
}
