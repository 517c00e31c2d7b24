using System.Net;
using Forwarder.Configuration;

namespace Forwarder.Tests.Configuration;

public sealed class ValueParsersTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("250ms", 0.25)]
    [InlineData("2s", 2)]
    [InlineData("1.5s", 1.5)]
    [InlineData("5m", 300)]
    [InlineData("1m30s", 90)]
    [InlineData("1h", 3600)]
    [InlineData("1d", 86400)]
    public void TryParseDuration_ValidText_ReturnsSeconds(string text, double seconds)
    {
        Assert.True(ValueParsers.TryParseDuration(text, out var value));
        Assert.Equal(TimeSpan.FromSeconds(seconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("s")]
    [InlineData("5 minutes")]
    [InlineData("5mins")]
    [InlineData("-1s")]
    public void TryParseDuration_InvalidText_Fails(string text) => Assert.False(ValueParsers.TryParseDuration(text, out _));

    [Theory]
    [InlineData("0", "0")]
    [InlineData("250ms", "250ms")]
    [InlineData("90s", "1m30s")]
    [InlineData("2h", "2h")]
    public void FormatDuration_RoundTrips(string text, string formatted)
    {
        Assert.True(ValueParsers.TryParseDuration(text, out var value));
        Assert.Equal(formatted, ValueParsers.FormatDuration(value));
    }

    [Theory]
    [InlineData("65536", 65536)]
    [InlineData("64KiB", 65536)]
    [InlineData("1MiB", 1048576)]
    [InlineData("1MB", 1000000)]
    [InlineData("16 KiB", 16384)]
    public void TryParseSize_ValidText_ReturnsBytes(string text, long bytes)
    {
        Assert.True(ValueParsers.TryParseSize(text, out var value));
        Assert.Equal(bytes, value);
    }

    [Theory]
    [InlineData("big")]
    [InlineData("-1")]
    [InlineData("1.5MiB")]
    public void TryParseSize_InvalidText_Fails(string text) => Assert.False(ValueParsers.TryParseSize(text, out _));

    [Theory]
    [InlineData("127.0.0.1:7000", "127.0.0.1:7000")]
    [InlineData("[::1]:7000", "[::1]:7000")]
    [InlineData("*:7000", "[::]:7000")]
    [InlineData("0.0.0.0:0", "0.0.0.0:0")]
    public void TryParseListenAddress_Valid(string text, string endPoint)
    {
        Assert.True(ValueParsers.TryParseListenAddress(text, out var value));
        Assert.Equal(endPoint, value.ToString());
    }

    [Theory]
    [InlineData("7000")]
    [InlineData("localhost:7000")]
    [InlineData("::1:7000")]
    [InlineData("127.0.0.1:70000")]
    [InlineData("127.0.0.1:")]
    public void TryParseListenAddress_Invalid_Fails(string text) => Assert.False(ValueParsers.TryParseListenAddress(text, out _));

    [Fact]
    public void TryParseEndpointAddress_DnsName_ResolvesLater()
    {
        Assert.True(ValueParsers.TryParseEndpointAddress("backend.local:9000", out var endPoint));
        Assert.Equal(new DnsEndPoint("backend.local", 9000), endPoint);
    }

    [Theory]
    [InlineData("127.0.0.1:0")]
    [InlineData("bad host:9000")]
    [InlineData("backend")]
    public void TryParseEndpointAddress_Invalid_Fails(string text) => Assert.False(ValueParsers.TryParseEndpointAddress(text, out _));
}
