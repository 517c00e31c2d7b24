using Forwarder.L7.Http2.Proxy;
using Forwarder.L7.Http2.Server;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// A pooled exchange lives as long as its connection: a burst of streams with huge heads must
/// not leave each pooled exchange holding a routed head's buffer past what the pool keeps.
/// </summary>
public sealed class Http2ProxyExchangeTests
{
    [Fact]
    public void Reset_DropsARoutedHeadBufferGrownPastWhatThePoolKeeps()
    {
        var exchange = new Http2ProxyExchange();
        exchange.Head.Reset(30 * 1024);
        Assert.True(exchange.Head.Capacity >= 30 * 1024);

        exchange.Reset();

        Assert.True(exchange.Head.Capacity <= Http2HeaderFields.RetainedBytes, $"{exchange.Head.Capacity} bytes kept");
        Assert.True(exchange.Head.Bytes.IsEmpty);
        Assert.Equal(0, exchange.Head.HeaderCount);
    }

    [Fact]
    public void Reset_KeepsAnOrdinaryHeadsBuffer()
    {
        var exchange = new Http2ProxyExchange();
        exchange.Head.Reset(6 * 1024);
        var capacity = exchange.Head.Capacity;

        exchange.Reset();

        Assert.Equal(capacity, exchange.Head.Capacity);
    }
}
