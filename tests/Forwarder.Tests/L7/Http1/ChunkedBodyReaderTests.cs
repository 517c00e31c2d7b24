using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class ChunkedBodyReaderTests
{
    private const string Body = "5\r\nhello\r\n1A;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: 42\r\n\r\n";

    private readonly ChunkedBodyReader _reader = new();

    public ChunkedBodyReaderTests() => _reader.Reset();

    [Fact]
    public void Advance_WholeBody_EndsExactlyAfterTheTrailers()
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(Body + "GET /next"));

        var status = _reader.Advance(buffer, out var consumed, out _);

        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(Body.Length, buffer.Slice(buffer.Start, consumed).Length);
        Assert.Equal(31, _reader.DataBytes);
        Assert.True(_reader.IsComplete);
    }

    [Fact]
    public void Advance_ByteByByte_KeepsPartialLinesAndCompletesAtTheLastByte()
    {
        var bytes = Encoding.ASCII.GetBytes(Body);
        var pending = new List<byte>();
        var status = Http1ParseStatus.NeedMore;
        for (var i = 0; i < bytes.Length; i++)
        {
            // Like a pipe: what was not consumed is presented again with the new byte.
            pending.Add(bytes[i]);
            var buffer = new ReadOnlySequence<byte>(pending.ToArray());
            status = _reader.Advance(buffer, out var consumed, out var error);
            Assert.True(status != Http1ParseStatus.Error, error.Reason);
            pending.RemoveRange(0, (int)buffer.Slice(buffer.Start, consumed).Length);
            Assert.Equal(i == bytes.Length - 1 ? Http1ParseStatus.Complete : Http1ParseStatus.NeedMore, status);
        }

        Assert.Empty(pending);
        Assert.Equal(31, _reader.DataBytes);
    }

    [Fact]
    public void Advance_EmptyBody_IsJustTheLastChunk()
    {
        Assert.Equal(Http1ParseStatus.Complete, _reader.Advance(new ReadOnlySequence<byte>("0\r\n\r\n"u8.ToArray()), out _, out _));
        Assert.Equal(0, _reader.DataBytes);
    }

    [Theory]
    [InlineData("zz\r\n", "invalid chunk size")]
    [InlineData("\r\n", "invalid chunk size")]
    [InlineData("-5\r\n", "invalid chunk size")]
    [InlineData("0x5\r\n", "invalid chunk size")]
    [InlineData(" 5\r\n", "invalid chunk size")]
    [InlineData("1000000000000000\r\n", "invalid chunk size")]
    [InlineData("5\r\nhelloX\r\n", "chunk data longer than its size")]
    [InlineData("5\r\nhello\r\r\n", "chunk data longer than its size")]
    [InlineData("5\nhello\r\n", "bare LF")]
    [InlineData("5;ext=\u0001\r\n", "control character in a chunk extension")]
    [InlineData("0\r\nnot a trailer\r\n\r\n", "malformed trailer field")]
    [InlineData("0\r\n\n", "bare LF")]
    public void Advance_MalformedChunking_IsRefused(string body, string reason)
    {
        var status = _reader.Advance(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(body)), out _, out var error);

        Assert.Equal(Http1ParseStatus.Error, status);
        Assert.Equal(400, error.Status);
        Assert.Contains(reason, error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Advance_EndlessSizeLine_IsRefusedPastTheLimit()
    {
        var status = _reader.Advance(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("5;" + new string('x', 5000))), out _, out var error);

        Assert.Equal(Http1ParseStatus.Error, status);
        Assert.Contains("chunk line too long", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Advance_LargeChunk_IsForwardedAsItArrives()
    {
        _reader.Advance(new ReadOnlySequence<byte>("100000\r\n"u8.ToArray()), out _, out _);

        var part = new ReadOnlySequence<byte>(new byte[4096]);
        Assert.Equal(Http1ParseStatus.NeedMore, _reader.Advance(part, out var consumed, out _));

        // All of it is body: nothing waits for the rest of the 1 MiB chunk.
        Assert.Equal(part.End, consumed);
        Assert.Equal(4096, _reader.DataBytes);
    }

    [Fact]
    public void Advance_SizeLine_DeclaresTheWholeChunkAtOnce()
    {
        _reader.Advance(new ReadOnlySequence<byte>("fffffffffffffff\r\nab"u8.ToArray()), out _, out _);

        // A limit is checked against what the size line promised, not what arrived so far.
        Assert.Equal(2, _reader.DataBytes);
        Assert.Equal(0xfffffffffffffffL, _reader.DeclaredBytes);
    }

    [Fact]
    public void Advance_SizeLineWithTooManyDigits_IsRefusedBeforeItEnds()
    {
        var status = _reader.Advance(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(new string('0', 15) + "1")), out _, out var error);

        Assert.Equal(Http1ParseStatus.Error, status);
        Assert.Contains("invalid chunk size", error.Reason, StringComparison.Ordinal);
        _reader.Reset();
        Assert.Equal(Http1ParseStatus.NeedMore, _reader.Advance(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(new string('f', 15))), out _, out _));
    }
}
