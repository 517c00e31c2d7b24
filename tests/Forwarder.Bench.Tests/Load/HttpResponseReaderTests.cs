using System.Text;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Tests.Load;

public sealed class HttpResponseReaderTests
{
    private const string ChunkedResponse = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a; ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, false)]
    [InlineData("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 404, false)]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 204, false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 200, true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", 200, false)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", 201, false)]
    [InlineData(ChunkedResponse, 200, false)]
    public void Read_WholeResponse_CompletesWithStatus(string response, int status, bool closeAfter)
    {
        var bytes = Encoding.ASCII.GetBytes(response);
        var reader = new HttpResponseReader();
        reader.Reset();

        Assert.Equal(ResponseProgress.Complete, reader.Read(bytes, out var consumed));
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(status, reader.Status);
        Assert.Equal(closeAfter, reader.CloseAfter);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz")]
    [InlineData(ChunkedResponse)]
    public void Read_OneByteAtATime_CompletesExactlyAtTheLastByte(string response)
    {
        var bytes = Encoding.ASCII.GetBytes(response);
        var reader = new HttpResponseReader();
        reader.Reset();

        for (var i = 0; i < bytes.Length - 1; i++)
        {
            Assert.Equal(ResponseProgress.NeedMore, reader.Read(bytes.AsSpan(i, 1), out var consumed));
            Assert.Equal(1, consumed);
        }

        Assert.Equal(ResponseProgress.Complete, reader.Read(bytes.AsSpan(^1), out _));
    }

    [Fact]
    public void Read_TwoResponsesInOneBuffer_ConsumesOnlyTheFirst()
    {
        var first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        var bytes = Encoding.ASCII.GetBytes(first + "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
        var reader = new HttpResponseReader();
        reader.Reset();

        Assert.Equal(ResponseProgress.Complete, reader.Read(bytes, out var consumed));
        Assert.Equal(first.Length, consumed);
        reader.Reset();
        Assert.Equal(ResponseProgress.Complete, reader.Read(bytes.AsSpan(consumed), out _));
        Assert.Equal(500, reader.Status);
    }

    [Fact]
    public void Read_NoLengthNoChunking_ReadsUntilClose()
    {
        var reader = new HttpResponseReader();
        reader.Reset();

        Assert.Equal(ResponseProgress.NeedMore, reader.Read("HTTP/1.1 200 OK\r\n\r\nsome body"u8, out _));
        Assert.True(reader.ReadsUntilClose);
        Assert.True(reader.CloseAfter);
    }

    [Theory]
    [InlineData("SSH-2.0-OpenSSH\r\n")]
    [InlineData("HTTP/1.1 2x0 OK\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n")]
    public void Read_Garbage_IsMalformed(string response)
    {
        var reader = new HttpResponseReader();
        reader.Reset();

        Assert.Equal(ResponseProgress.Malformed, reader.Read(Encoding.ASCII.GetBytes(response), out _));
    }

    [Fact]
    public void Read_EndlessHeaders_IsMalformedPastTheLimit()
    {
        var reader = new HttpResponseReader();
        reader.Reset();
        reader.Read("HTTP/1.1 200 OK\r\n"u8, out _);
        var header = Encoding.ASCII.GetBytes("X-Filler: " + new string('a', 1000) + "\r\n");

        var progress = ResponseProgress.NeedMore;
        for (var i = 0; i < 100 && progress == ResponseProgress.NeedMore; i++)
        {
            progress = reader.Read(header, out _);
        }

        Assert.Equal(ResponseProgress.Malformed, progress);
    }
}
