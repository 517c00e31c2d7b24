using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class Http1ResponseWriterTests
{
    private static string Forward(string response, bool closeAfter = false, string? setCookie = null, bool sayKeepAlive = false)
    {
        var head = new Http1ResponseHead();
        var status = Http1ResponseParser.TryParse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(response)), Http1Limits.Default, headRequest: false, head, out _, out var error);
        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        var output = new ArrayBufferWriter<byte>();
        Http1ResponseWriter.Write(output, head, closeAfter, setCookie, sayKeepAlive: sayKeepAlive);
        return Encoding.Latin1.GetString(output.WrittenSpan);
    }

    [Fact]
    public void Write_TypicalResponse_KeepsEndToEndFieldsAndAddsVia()
    {
        Assert.Equal(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nVia: 1.1 forwarder\r\n\r\n",
            Forward("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"));
    }

    [Fact]
    public void Write_ConnectionListedFields_AreDroppedButFramingStays()
    {
        var forwarded = Forward("HTTP/1.1 200 OK\r\nConnection: X-Internal, Content-Length\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\n");

        Assert.DoesNotContain("X-Internal", forwarded, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Length: 2\r\n", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_KeptOpenForAnHttp10Client_SaysKeepAlive()
    {
        Assert.Contains("\r\nConnection: keep-alive\r\n", Forward("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", sayKeepAlive: true), StringComparison.Ordinal);
        Assert.DoesNotContain("keep-alive", Forward("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", closeAfter: true, sayKeepAlive: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Write_RepeatedVia_IsJoinedThenAppendedTo()
        => Assert.Contains("\r\nVia: 1.1 a, 1.1 b, 1.1 forwarder\r\n", Forward("HTTP/1.1 200 OK\r\nVia: 1.1 a\r\nContent-Length: 0\r\nVia: 1.1 b\r\n\r\n"), StringComparison.Ordinal);

    [Fact]
    public void Write_CloseAfterAndAffinityCookie_AreAdded()
    {
        var forwarded = Forward("HTTP/1.1 200 OK\r\nVia: 1.1 backend\r\nContent-Length: 0\r\n\r\n", closeAfter: true, setCookie: "route=ab12; Path=/; HttpOnly");

        Assert.Equal(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nSet-Cookie: route=ab12; Path=/; HttpOnly\r\nVia: 1.1 backend, 1.1 forwarder\r\n\r\n",
            forwarded);
    }

    [Fact]
    public void Write_SwitchingProtocols_KeepsTheUpgrade()
    {
        var forwarded = Forward("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n", closeAfter: true);

        Assert.Equal("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nVia: 1.1 forwarder\r\n\r\n", forwarded);
    }

    [Fact]
    public void Write_NoReasonFromAnHttp10Upstream_UsesTheStandardPhrase()
        => Assert.StartsWith("HTTP/1.1 404 Not Found\r\n", Forward("HTTP/1.0 404\r\nContent-Length: 0\r\n\r\n"), StringComparison.Ordinal);

    [Theory]
    [InlineData(400, "Bad Request")]
    [InlineData(431, "Request Header Fields Too Large")]
    [InlineData(502, "Bad Gateway")]
    public void WriteError_IsACompleteResponseThatCloses(int status, string phrase)
    {
        var output = new ArrayBufferWriter<byte>();

        Http1ResponseWriter.WriteError(output, status);

        var body = $"{status} {phrase}\n";
        Assert.Equal($"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}", Encoding.ASCII.GetString(output.WrittenSpan));
    }
}
