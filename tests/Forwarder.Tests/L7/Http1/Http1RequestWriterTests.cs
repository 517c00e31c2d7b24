using System.Buffers;
using System.Net;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class Http1RequestWriterTests
{
    private static readonly ForwardingContext Context = new(IPAddress.Parse("192.0.2.7"), "http", new RequestId("3f2a9c", 26));

    private static string Forward(string request, ForwardingContext? context = null)
    {
        var head = new Http1RequestHead();
        var status = Http1RequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(request)), Http1Limits.Default, head, out _, out var error);
        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        var output = new ArrayBufferWriter<byte>();
        Http1RequestWriter.Write(output, head, context ?? Context);
        return Encoding.Latin1.GetString(output.WrittenSpan);
    }

    [Fact]
    public void Write_TypicalRequest_AddsTheProxyFieldsAndKeepsTheRest()
    {
        var forwarded = Forward("GET /cart?id=9 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n");

        Assert.Equal(
            "GET /cart?id=9 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8\r\nAccept: */*\r\n" +
            "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\nVia: 1.1 forwarder\r\nX-Request-Id: 3f2a9c-1a\r\n\r\n",
            forwarded);
    }

    [Fact]
    public void Write_HopByHopAndConnectionListedFields_AreDropped()
    {
        var forwarded = Forward("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, Host, Content-Length\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Secret: s\r\nProxy-Connection: x\r\nContent-Length: 0\r\n\r\n");

        Assert.DoesNotContain("Connection:", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("Keep-Alive", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("TE:", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("X-Secret", forwarded, StringComparison.Ordinal);

        // A Connection header cannot make the proxy drop what frames or routes the request.
        Assert.Contains("\r\nHost: a\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Length: 0\r\n", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_RepeatedForwardedForAndVia_AreJoinedInOrderThenAppendedTo()
    {
        var forwarded = Forward("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.1 edge\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nVia: 1.0 cache\r\nX-Forwarded-For:\r\n\r\n");

        Assert.Contains("\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nVia: 1.1 edge, 1.0 cache, 1.1 forwarder\r\n", forwarded, StringComparison.Ordinal);
        Assert.Single(forwarded.Split("X-Forwarded-For:")[1..]);
        Assert.Single(forwarded.Split("Via:")[1..]);
    }

    [Fact]
    public void Write_UnderscoredFramingAndH2cUpgrade_AreDropped()
    {
        var forwarded = Forward("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent_Length: 99\r\nX_Other: kept\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nContent-Length: 2\r\n\r\n");

        Assert.DoesNotContain("Transfer_Encoding", forwarded, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Content_Length", forwarded, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Upgrade", forwarded, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("HTTP2-Settings", forwarded, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\nX_Other: kept\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Length: 2\r\n", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ExistingForwardingFields_AreAppendedToOrReplaced()
    {
        var forwarded = Forward("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nVia: 1.1 edge\r\nX-Request-Id: abc\r\n\r\n");

        Assert.Contains("\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.2, 192.0.2.7\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Forwarded-Proto: http\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Forwarded-Host: a\r\n", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("evil", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nVia: 1.1 edge, 1.1 forwarder\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Request-Id: abc\r\n", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("3f2a9c", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_AbsoluteFormTarget_BecomesOriginFormWithItsHost()
    {
        var forwarded = Forward("GET http://api.internal/v1?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");

        Assert.StartsWith("GET /v1?q=1 HTTP/1.1\r\nHost: api.internal\r\n", forwarded, StringComparison.Ordinal);
        Assert.DoesNotContain("other", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_AbsoluteFormWithoutPath_SendsSlash()
        => Assert.StartsWith("GET / HTTP/1.1\r\nHost: api\r\n", Forward("GET http://api HTTP/1.1\r\nHost: x\r\n\r\n"), StringComparison.Ordinal);

    [Fact]
    public void Write_WebSocketUpgrade_KeepsTheUpgradeExplicitly()
    {
        var forwarded = Forward("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n");

        Assert.Contains("\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\nUpgrade: websocket\r\n", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ChunkedBody_KeepsItsFraming()
    {
        var forwarded = Forward("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");

        Assert.Contains("\r\nTransfer-Encoding: gzip, chunked\r\n", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_Http10Client_IsForwardedAsHttp11WithA10Via()
    {
        var forwarded = Forward("GET /old HTTP/1.0\r\nHost: a\r\n\r\n");

        Assert.StartsWith("GET /old HTTP/1.1\r\n", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nVia: 1.0 forwarder\r\n", forwarded, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2001:db8::1", "[2001:db8::1]")]
    [InlineData("::ffff:192.0.2.9", "192.0.2.9")]
    public void Write_ClientAddress_IsWrittenUnambiguously(string address, string expected)
    {
        var forwarded = Forward("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Context with { ClientAddress = IPAddress.Parse(address) });

        Assert.Contains($"\r\nX-Forwarded-For: {expected}\r\n", forwarded, StringComparison.Ordinal);
    }
}
