using System.Buffers;
using Forwarder.L7.Http2;
using Forwarder.L7.Http2.Codec;
using Forwarder.Tests.L7.Http1;

namespace Forwarder.Tests.L7.Http2;

public sealed class Http2FrameScannerTests
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private static readonly string[] Expected =
    [
        "start 4/0 len 6 s0", "end 4",
        "start 1/0 len 2 s1", "end 1",
        "start 9/4 len 1 s1", "end 9",
        "start 6/1 len 0 s0", "end 6",
        "start 3/0 len 4 s2147483647", "end 3",
    ];

    /// <summary>The preface, then SETTINGS, HEADERS without END_HEADERS, its CONTINUATION, an empty PING ACK and an RST_STREAM with the highest stream id.</summary>
    private static byte[] Stream() =>
    [
        .. Preface,
        .. Frame(Http2Frames.Settings, 0, 0, new byte[6]),
        .. Frame(Http2Frames.Headers, 0, 1, [0x82, 0x86]),
        .. Frame(Http2Frames.Continuation, Http2Frames.EndHeaders, 1, [0x84]),
        .. Frame(Http2Frames.Ping, Http2Frames.Ack, 0, []),
        .. Frame(Http2Frames.RstStream, 0, 0x7FFF_FFFF, new byte[4]),
    ];

    private static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
        => [(byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, type, flags, (byte)(stream >> 24), (byte)(stream >> 16), (byte)(stream >> 8), (byte)stream, .. payload];

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(9)]
    [InlineData(1000)]
    public void Scan_BytesInAnySplit_SeesEveryFrameOnce(int chunk)
    {
        var bytes = Stream();
        var scanner = new Http2FrameScanner(Preface.Length);
        var observer = new Recorder();

        // Fed read by read, as a pipe hands them over, each read itself in segments.
        for (var offset = 0; offset < bytes.Length; offset += chunk * 3)
        {
            var read = bytes[offset..Math.Min(bytes.Length, offset + (chunk * 3))];
            Assert.True(scanner.Scan(TestSequences.Chunks(read, chunk), observer));
        }

        Assert.Equal(Expected, observer.Seen);
    }

    [Fact]
    public void Scan_ObserverStops_ReturnsFalse()
    {
        var scanner = new Http2FrameScanner(Preface.Length);
        var observer = new Recorder { StopAt = 2 };

        Assert.False(scanner.Scan(new ReadOnlySequence<byte>(Stream()), observer));
        Assert.Equal(2, observer.Seen.Count);
    }

    private sealed class Recorder : IHttp2FrameObserver
    {
        public List<string> Seen { get; } = [];

        public int StopAt { get; init; } = int.MaxValue;

        public bool FrameStarted(in Http2FrameHeader frame)
        {
            Seen.Add($"start {frame.Type}/{frame.Flags} len {frame.Length} s{frame.StreamId}");
            return Seen.Count < StopAt;
        }

        public bool FrameEnded(in Http2FrameHeader frame)
        {
            Seen.Add($"end {frame.Type}");
            return Seen.Count < StopAt;
        }
    }
}
