using System.Buffers;
using System.Diagnostics;
using System.Text;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Hpack;
using static Forwarder.Tests.L7.Http2.Codec.Http2FrameReaderTests;

namespace Forwarder.Tests.L7.Http2.Codec;

/// <summary>
/// The codec against an independent implementation: python3-hpack and python3-hyperframe (the
/// libraries under python3-h2) encode what ours decodes, and decode what ours encodes, through
/// one connection's worth of header blocks, so dynamic-table state has to stay in step.
/// </summary>
public sealed class Http2CodecPeerTests
{
    /// <summary>
    /// Modes: hpack-encode HUFFMAN (stdin: one header list a line, "namehex:valuehex" pairs joined
    /// by ","; a name starting "!" is never-indexed; prints one block a line, hex), hpack-decode
    /// (stdin: blocks in hex; prints header lists as above), frames-write (prints a hex stream of
    /// one frame of every type), frames-read (stdin: a hex stream; prints each frame's repr and payload length).
    /// </summary>
    private const string Peer = """
        import sys, hpack
        from hyperframe.frame import *
        mode = sys.argv[1]
        def fields(line):
            out = []
            for pair in filter(None, line.split(',')):
                n, v = pair.split(':')
                if n.startswith('!'): out.append(hpack.NeverIndexedHeaderTuple(bytes.fromhex(n[1:]), bytes.fromhex(v)))
                else: out.append((bytes.fromhex(n), bytes.fromhex(v)))
            return out
        if mode == 'hpack-encode':
            e = hpack.Encoder()
            for line in sys.stdin.read().splitlines(): print(e.encode(fields(line), huffman=sys.argv[2] == '1').hex())
        elif mode == 'hpack-decode':
            d = hpack.Decoder()
            d.max_header_list_size = 1 << 20
            for line in sys.stdin.read().splitlines(): print(','.join(n.hex() + ':' + v.hex() for n, v in d.decode(bytes.fromhex(line), raw=True)))
        elif mode == 'frames-write':
            fs = []
            f = DataFrame(1, b'abc', pad_length=4); f.flags.add('PADDED'); f.flags.add('END_STREAM'); fs.append(f)
            f = HeadersFrame(3, b'\x82\x86', pad_length=2, depends_on=1, stream_weight=15, exclusive=True); f.flags.add('PADDED'); f.flags.add('PRIORITY'); fs.append(f)
            fs.append(ContinuationFrame(3, b'\x84', flags=['END_HEADERS']))
            fs.append(PriorityFrame(5, depends_on=3, stream_weight=7))
            fs.append(RstStreamFrame(5, error_code=8))
            fs.append(SettingsFrame(0, settings={3: 100, 4: 1048576, 5: 32768}))
            fs.append(SettingsFrame(0, flags=['ACK']))
            f = PushPromiseFrame(3, promised_stream_id=6, data=b'\x82', pad_length=1, flags=['END_HEADERS']); f.flags.add('PADDED'); fs.append(f)
            fs.append(PingFrame(0, opaque_data=b'12345678'))
            fs.append(GoAwayFrame(0, last_stream_id=5, error_code=11, additional_data=b'calm'))
            fs.append(WindowUpdateFrame(3, window_increment=65536))
            print(b''.join(f.serialize() for f in fs).hex())
        else:
            data = memoryview(bytes.fromhex(sys.stdin.read().strip()))
            while data:
                f, length = Frame.parse_frame_header(data[:9]); f.parse_body(data[9:9 + length]); data = data[9 + length:]
                print(repr(f), length)
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Decode_BlocksThePythonEncoderWrote_SameHeaderLists(bool huffman)
    {
        var lists = HeaderLists();

        var blocks = await RunAsync(["hpack-encode", huffman ? "1" : "0"], lists.Select(Format));

        var decoder = new HpackDecoder(4096, 1 << 20);
        Assert.Equal(lists.Count, blocks.Length);
        for (var i = 0; i < lists.Count; i++)
        {
            Assert.Equal(lists[i].Select(f => (f.Name.TrimStart('!'), f.Value)), HeaderList.Decode(decoder, blocks[i]));
        }

        Assert.True(decoder.Table.Count > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Encode_BlocksThePythonDecoderReads_SameHeaderLists(bool huffman)
    {
        var lists = HeaderLists();
        var encoder = new HpackEncoder(4096, huffman);
        var blocks = new List<string>();
        foreach (var list in lists)
        {
            var output = new ArrayBufferWriter<byte>();
            encoder.BeginBlock(output);
            foreach (var (name, value) in list)
            {
                var indexing = name.StartsWith('!') ? HpackIndexing.NeverIndexed : HpackIndexing.Incremental;
                encoder.Encode(Encoding.Latin1.GetBytes(name.TrimStart('!')), Encoding.Latin1.GetBytes(value), output, indexing);
            }

            blocks.Add(Convert.ToHexStringLower(output.WrittenSpan));
        }

        var decoded = await RunAsync(["hpack-decode"], blocks);

        Assert.Equal(lists.Select(l => Format([.. l.Select(f => (f.Name.TrimStart('!'), f.Value))])), decoded);
    }

    [Fact]
    public async Task TryRead_FramesHyperframeWrote_FieldsAsWritten()
    {
        var hex = Assert.Single(await RunAsync(["frames-write"], []));
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Convert.FromHexString(hex));
        var frames = new List<Http2Frame>();
        while (reader.TryRead(ref buffer, out var frame))
        {
            frames.Add(frame);
        }

        Assert.True(buffer.IsEmpty);
        Assert.Equal(
            [Http2Frames.Data, Http2Frames.Headers, Http2Frames.Continuation, Http2Frames.Priority, Http2Frames.RstStream, Http2Frames.Settings, Http2Frames.Settings, Http2Frames.PushPromise, Http2Frames.Ping, Http2Frames.GoAway, Http2Frames.WindowUpdate],
            frames.Select(f => f.Type));
        Assert.Equal("abc"u8.ToArray(), frames[0].Payload.ToArray());
        Assert.True(frames[0].EndStream);
        Assert.Equal(8, frames[0].FlowControlledLength);
        Assert.Equal([0x82, 0x86], frames[1].Payload.ToArray());
        Assert.True(frames[2].EndHeaders);
        Assert.Equal(Http2ErrorCode.Cancel, frames[4].RstStreamErrorCode);
        Assert.Equal(
            [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1_048_576), new(Http2SettingId.MaxFrameSize, 32_768)],
            frames[5].Settings.ToList());
        Assert.True(frames[6].IsAck);
        Assert.Equal(6, frames[7].PromisedStreamId);
        Assert.Equal([0x82], frames[7].Payload.ToArray());
        Assert.Equal(0x3132333435363738ul, frames[8].PingData);
        Assert.Equal((5, Http2ErrorCode.EnhanceYourCalm), (frames[9].GoAwayLastStreamId, frames[9].GoAwayErrorCode));
        Assert.Equal("calm"u8.ToArray(), frames[9].GoAwayDebugData.ToArray());
        Assert.Equal((3, 65_536), (frames[10].StreamId, frames[10].WindowIncrement));
    }

    [Fact]
    public async Task Write_FramesHyperframeReads_FieldsAsWritten()
    {
        var bytes = Written(o =>
        {
            Http2FrameWriter.WriteSettings(o, [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.HeaderTableSize, 0)]);
            Http2FrameWriter.WriteSettingsAck(o);
            Http2FrameWriter.WriteHeaders(o, 1, new byte[20_000], endStream: false);
            Http2FrameWriter.WriteData(o, 1, "hello"u8, endStream: true);
            Http2FrameWriter.WritePriority(o, 3, 1, exclusive: false, 16);
            Http2FrameWriter.WriteRstStream(o, 3, Http2ErrorCode.RefusedStream);
            Http2FrameWriter.WritePushPromise(o, 1, 2, [0x82]);
            Http2FrameWriter.WritePing(o, 0x3132333435363738, ack: true);
            Http2FrameWriter.WriteGoAway(o, 3, Http2ErrorCode.ProtocolError, "bye"u8);
            Http2FrameWriter.WriteWindowUpdate(o, 1, 12_345);
        });

        var frames = await RunAsync(["frames-read"], [Convert.ToHexStringLower(bytes)]);

        Assert.Equal(
            [
                "SettingsFrame(stream_id=0, flags=[]): settings={3: 100, 1: 0} 12",
                "SettingsFrame(stream_id=0, flags=['ACK']): settings={} 0",
                "HeadersFrame(stream_id=1, flags=[]): exclusive=False, depends_on=0, stream_weight=0, data=<hex:00000000000000000000...> 16384",
                "ContinuationFrame(stream_id=1, flags=['END_HEADERS']): data=<hex:00000000000000000000...> 3616",
                "DataFrame(stream_id=1, flags=['END_STREAM']): <hex:68656c6c6f> 5",
                "PriorityFrame(stream_id=3, flags=[]): exclusive=False, depends_on=1, stream_weight=16 5",
                "RstStreamFrame(stream_id=3, flags=[]): error_code=7 4",
                "PushPromiseFrame(stream_id=1, flags=['END_HEADERS']): promised_stream_id=2, data=<hex:82> 5",
                "PingFrame(stream_id=0, flags=['ACK']): opaque_data=b'12345678' 8",
                "GoAwayFrame(stream_id=0, flags=[]): last_stream_id=3, error_code=1, additional_data=b'bye' 11",
                "WindowUpdateFrame(stream_id=1, flags=[]): window_increment=12345 4",
            ],
            frames);
    }

    /// <summary>
    /// A connection's worth of requests: the RFC's, then deterministic made-up ones with repeated
    /// fields (indexed the second time), long values (multi-byte lengths, evictions), bytes above
    /// 0x7f, empty values, and never-indexed secrets.
    /// </summary>
    private static List<(string Name, string Value)[]> HeaderLists()
    {
        var random = new Random(7541);
        var lists = new List<(string Name, string Value)[]>(Rfc7541Examples.Requests);
        for (var i = 0; i < 60; i++)
        {
            var list = new List<(string, string)>
            {
                (":method", i % 3 == 0 ? "POST" : "GET"),
                (":path", $"/svc/{random.Next(5)}/item?id={random.Next(1000)}"),
                ("user-agent", "forwarder-test/1.0"),
                ($"x-h{random.Next(12)}", new string((char)random.Next(0x20, 0xff), random.Next(0, 300))),
                ("!authorization", $"Bearer {random.Next()}"),
                ("x-empty", string.Empty),
            };
            lists.Add([.. list]);
        }

        return lists;
    }

    private static string Format((string Name, string Value)[] list) =>
        string.Join(',', list.Select(f => $"{(f.Name.StartsWith('!') ? "!" : string.Empty)}{Hex(f.Name.TrimStart('!'))}:{Hex(f.Value)}"));

    private static string Hex(string text) => Convert.ToHexStringLower(Encoding.Latin1.GetBytes(text));

    private static async Task<string[]> RunAsync(string[] arguments, IEnumerable<string> input)
    {
        using var process = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", Peer, .. arguments])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("python3 did not start");
        foreach (var line in input)
        {
            await process.StandardInput.WriteLineAsync(line);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Eventually.DefaultTimeout);
        Assert.True(process.ExitCode == 0, await error);
        return (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
