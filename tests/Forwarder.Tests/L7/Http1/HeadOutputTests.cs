using System.Buffers;
using System.Net;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class HeadOutputTests
{
    /// <summary>0 stands for an <see cref="ArrayBufferWriter{T}"/>; otherwise the most a <see cref="TinySpanWriter"/> hands out unasked.</summary>
    public static TheoryData<int> SpanSizes => [0, 1, 3, 7];

    private static IBufferWriter<byte> Writer(int spanSize) => spanSize == 0 ? new ArrayBufferWriter<byte>() : new TinySpanWriter(spanSize);

    private delegate void Piece(ref HeadOutput output);

    private static string Written(IBufferWriter<byte> writer) => writer switch
    {
        ArrayBufferWriter<byte> array => Encoding.Latin1.GetString(array.WrittenSpan),
        TinySpanWriter tiny => Encoding.Latin1.GetString(tiny.Written),
        _ => throw new ArgumentException("unknown writer", nameof(writer)),
    };

    /// <summary>Writes <paramref name="piece"/> after 0 to 7 bytes, into every kind of writer, so it crosses every span edge, and checks what came out.</summary>
    private static void AssertAtEveryOffset(Piece piece, string expected)
    {
        foreach (var spanSize in new[] { 0, 1, 3, 7 })
        {
            for (var offset = 0; offset < 8; offset++)
            {
                var writer = Writer(spanSize);
                var prefix = new string('p', offset);

                var output = new HeadOutput(writer);
                output.Write(Encoding.ASCII.GetBytes(prefix));
                piece(ref output);
                output.Write("|"u8);
                output.Commit();

                Assert.Equal(prefix + expected + "|", Written(writer));
            }
        }
    }

    [Theory]
    [MemberData(nameof(SpanSizes))]
    public void Write_PiecesOfEverySize_ComeOutWholeAndInOrder(int spanSize)
    {
        var writer = Writer(spanSize);
        var long1 = new string('a', 300) + "|";
        var long2 = string.Concat(Enumerable.Range(0, 50).Select(i => (char)('A' + (i % 26))));

        var output = new HeadOutput(writer);
        output.Write("GET"u8);
        output.Write(" "u8);
        output.Write(default);
        output.Write("/path?q=1"u8);
        output.Write(Encoding.ASCII.GetBytes(long1));
        output.Write(" HTTP/1.1\r\n"u8);
        output.Write(Encoding.ASCII.GetBytes(long2));
        output.Write("\r\n\r\n"u8);
        output.Commit();

        Assert.Equal("GET /path?q=1" + long1 + " HTTP/1.1\r\n" + long2 + "\r\n\r\n", Written(writer));
    }

    [Fact]
    public void Write_AcrossOneByteSpans_AdvancesOneByteAtATime()
    {
        var writer = new TinySpanWriter(1);

        var output = new HeadOutput(writer);
        output.Write("abcdef"u8);
        output.Commit();

        Assert.Equal("abcdef", Encoding.Latin1.GetString(writer.Written));
        Assert.Equal([1, 1, 1, 1, 1, 1], writer.Chunks);
    }

    [Fact]
    public void Write_AcrossThreeByteSpans_FillsEachSpanBeforeAskingForTheNext()
    {
        var writer = new TinySpanWriter(3);

        var output = new HeadOutput(writer);
        output.Write("ab"u8);
        output.Write("cdefgh"u8);
        output.Write("ij"u8);
        output.Commit();

        Assert.Equal("abcdefghij", Encoding.Latin1.GetString(writer.Written));
        Assert.Equal([3, 3, 3, 1], writer.Chunks);
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(7L, "7")]
    [InlineData(10L, "10")]
    [InlineData(200L, "200")]
    [InlineData(1234567890L, "1234567890")]
    [InlineData(-1L, "-1")]
    [InlineData(long.MaxValue, "9223372036854775807")]
    [InlineData(long.MinValue, "-9223372036854775808")]
    public void WriteNumber_AtEveryOffsetInTinySpans_IsDecimal(long value, string expected)
    {
        AssertAtEveryOffset((ref HeadOutput output) => output.WriteNumber(value), expected);
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(10L, "a")]
    [InlineData(26L, "1a")]
    [InlineData(255L, "ff")]
    [InlineData(4096L, "1000")]
    [InlineData(long.MaxValue, "7fffffffffffffff")]
    [InlineData(-1L, "ffffffffffffffff")]
    [InlineData(long.MinValue, "8000000000000000")]
    public void WriteHexNumber_AtEveryOffsetInTinySpans_IsLowerCaseHex(long value, string expected)
    {
        AssertAtEveryOffset((ref HeadOutput output) => output.WriteHexNumber(value), expected);
    }

    [Theory]
    [InlineData("")]
    [InlineData("x")]
    [InlineData("close")]
    [InlineData("Not Found")]
    [InlineData("3f2a9c-a-very-long-connection-identifier-that-needs-more-than-one-span")]
    public void WriteAscii_AtEveryOffsetInTinySpans_IsCopied(string value)
    {
        AssertAtEveryOffset((ref HeadOutput output) => output.WriteAscii(value), value);
    }

    [Fact]
    public void WriteAscii_EmptyIntoAFullSpan_AsksForNothing()
    {
        var writer = new TinySpanWriter(3);

        var output = new HeadOutput(writer);
        output.Write("abc"u8);
        output.WriteAscii(string.Empty);
        output.WriteAscii(string.Empty);
        output.Commit();

        Assert.Equal("abc", Encoding.Latin1.GetString(writer.Written));
        Assert.Equal(1, writer.SpansHandedOut);
    }

    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("255.255.255.255", "255.255.255.255")]
    [InlineData("::1", "[::1]")]
    [InlineData("::", "[::]")]
    [InlineData("2001:db8:85a3::8a2e:370:7334", "[2001:db8:85a3::8a2e:370:7334]")]
    [InlineData("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[2001:db8:85a3::8a2e:370:7334]")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]")]
    [InlineData("::ffff:198.51.100.250", "[::ffff:198.51.100.250]")]
    [InlineData("fe80::1%4294967295", "[fe80::1%4294967295]")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]")]
    public void WriteAddress_AtEveryOffsetInTinySpans_BracketsIPv6(string address, string expected)
    {
        var parsed = IPAddress.Parse(address);
        AssertAtEveryOffset(
            (ref HeadOutput output) =>
            {
                output.WriteAddress(parsed);
                output.Write(", "u8);
                output.WriteAddress(parsed);
            },
            expected + ", " + expected);
    }

    [Fact]
    public void WriteAddress_WithTooLittleRoomLeft_KeepsWhatWasWrittenBefore()
    {
        // A writer with 20 bytes first: the address needs a fresh block, and the 17 bytes before it must be committed, not lost.
        var writer = new ArrayBufferWriter<byte>(20);

        var output = new HeadOutput(writer);
        output.Write("X-Forwarded-For: "u8);
        output.WriteAddress(IPAddress.Parse("2001:db8:85a3::8a2e:370:7334"));
        output.Write("\r\n"u8);
        output.Commit();

        Assert.Equal("X-Forwarded-For: [2001:db8:85a3::8a2e:370:7334]\r\n", Encoding.Latin1.GetString(writer.WrittenSpan));
    }

    [Fact]
    public void Commit_WhenEverythingFitTheFirstSpan_IsTheOnlyTimeBytesShow()
    {
        var writer = new ArrayBufferWriter<byte>();

        var output = new HeadOutput(writer);
        output.Write("HTTP/1.1 "u8);
        output.WriteNumber(404);
        output.Write(" "u8);
        output.WriteAscii("Not Found");
        output.Write("\r\nX-Request-Id: "u8);
        output.WriteAscii("c0ffee");
        output.Write("-"u8);
        output.WriteHexNumber(255);
        output.Write("\r\nX-Forwarded-For: "u8);
        output.WriteAddress(IPAddress.IPv6Loopback);
        output.Write("\r\n\r\n"u8);

        Assert.Equal(0, writer.WrittenCount);

        output.Commit();

        Assert.Equal("HTTP/1.1 404 Not Found\r\nX-Request-Id: c0ffee-ff\r\nX-Forwarded-For: [::1]\r\n\r\n", Encoding.Latin1.GetString(writer.WrittenSpan));
    }

    [Fact]
    public void Commit_InTinySpans_HoldsBackTheLastSpanUntilCalled()
    {
        var writer = new TinySpanWriter(4);

        var output = new HeadOutput(writer);
        output.Write("abcdefghij"u8);

        // Two whole spans were handed back as they filled; the third, partly written, waits for Commit.
        Assert.Equal("abcdefgh", Encoding.Latin1.GetString(writer.Written));

        output.Commit();

        Assert.Equal("abcdefghij", Encoding.Latin1.GetString(writer.Written));
        Assert.Equal([4, 4, 2], writer.Chunks);
    }

    [Fact]
    public void Commit_WithNothingWritten_AdvancesNothing()
    {
        var array = new ArrayBufferWriter<byte>();
        var tiny = new TinySpanWriter(3);

        var first = new HeadOutput(array);
        first.Commit();
        var second = new HeadOutput(tiny);
        second.Commit();

        Assert.Equal(0, array.WrittenCount);
        Assert.Empty(tiny.Written);
        Assert.Empty(tiny.Chunks);
    }

    [Fact]
    public void Refill_AsksForAtLeastWhatTheNextPieceNeeds()
    {
        var writer = new TinySpanWriter(1);

        var output = new HeadOutput(writer);
        output.Write("x"u8);
        output.WriteNumber(long.MinValue);
        output.WriteHexNumber(-1);
        output.WriteAscii("twelve chars");
        output.WriteAddress(IPAddress.Loopback);
        output.Commit();

        // With one-byte spans unasked, every piece after the first fits only because its refill asked for enough room.
        Assert.Equal("x" + "-9223372036854775808" + "ffffffffffffffff" + "twelve chars" + "127.0.0.1", Encoding.Latin1.GetString(writer.Written));
        Assert.Equal(5, writer.Hints.Count);
        Assert.True(writer.Hints[1] >= 20, $"WriteNumber asked for {writer.Hints[1]}");
        Assert.True(writer.Hints[2] >= 16, $"WriteHexNumber asked for {writer.Hints[2]}");
        Assert.True(writer.Hints[3] >= 12, $"WriteAscii asked for {writer.Hints[3]}");
        Assert.True(writer.Hints[4] >= 11, $"WriteAddress asked for {writer.Hints[4]}");
    }

    /// <summary>
    /// Hands out fresh spans of <paramref name="spanSize"/> bytes (more only when a size hint asks
    /// for more), filled with 0xEE so bytes that were never written show; takes what each span
    /// holds when advanced, so a write into a span already handed back is lost and shows too.
    /// </summary>
    private sealed class TinySpanWriter(int spanSize) : IBufferWriter<byte>
    {
        private readonly List<byte> _written = [];
        private byte[]? _current;

        public byte[] Written => [.. _written];

        /// <summary>How many bytes each non-empty Advance handed back.</summary>
        public List<int> Chunks { get; } = [];

        /// <summary>The size hint of every GetSpan.</summary>
        public List<int> Hints { get; } = [];

        public int SpansHandedOut => Hints.Count;

        public Span<byte> GetSpan(int sizeHint = 0)
        {
            Assert.True(sizeHint >= 0, "negative size hint");
            Hints.Add(sizeHint);
            _current = new byte[Math.Max(sizeHint, spanSize)];
            _current.AsSpan().Fill(0xEE);
            return _current;
        }

        public Memory<byte> GetMemory(int sizeHint = 0) => throw new NotSupportedException("HeadOutput writes through spans");

        public void Advance(int count)
        {
            if (count == 0)
            {
                _current = null;
                return;
            }

            if (_current is null || count < 0 || count > _current.Length)
            {
                throw new InvalidOperationException($"Advance({count}) past the span handed out ({_current?.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"})");
            }

            _written.AddRange(_current.AsSpan(0, count));
            Chunks.Add(count);
            _current = null;
        }
    }
}
