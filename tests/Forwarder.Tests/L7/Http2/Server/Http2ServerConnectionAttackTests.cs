using Forwarder.L7.Http2.Codec;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// Misbehaving clients, written frame by frame with python3-hyperframe and python3-hpack: each is
/// answered with the error RFC 9113 names, and a well-behaved client on another connection is
/// served all along.
/// </summary>
public sealed class Http2ServerConnectionAttackTests
{
    /// <summary>argv: port scenario. Prints "GOAWAY code", "RST id code", "HEADERS id status", "DATA id length end" as they arrive.</summary>
    private const string Client = """
        import socket, sys, hpack
        from hyperframe.frame import *
        port, scenario = int(sys.argv[1]), sys.argv[2]
        s = socket.create_connection(('127.0.0.1', port)); s.settimeout(20)
        enc = hpack.Encoder()
        def req(path): return enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', path)])
        def send(*fs):
            try: s.sendall(b''.join(f.serialize() for f in fs))
            except (BrokenPipeError, ConnectionResetError): pass
        s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); send(SettingsFrame(0))
        if scenario == 'data-on-0': s.sendall(b'\x00\x00\x01\x00\x00\x00\x00\x00\x00x')
        elif scenario == 'headers-even': send(HeadersFrame(2, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'decreasing-ids': send(HeadersFrame(5, req('/hold'), flags=['END_HEADERS', 'END_STREAM']), HeadersFrame(3, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'ping-flood': send(*[PingFrame(0, opaque_data=b'12345678') for _ in range(300)])
        elif scenario == 'settings-flood': send(*[SettingsFrame(0) for _ in range(300)])
        elif scenario == 'rst-flood': send(*[f for i in range(300) for f in (HeadersFrame(2 * i + 1, req('/hold'), flags=['END_HEADERS']), RstStreamFrame(2 * i + 1, error_code=8))])
        elif scenario == 'continuation-flood': send(HeadersFrame(1, req('/')), *[ContinuationFrame(1, b'') for _ in range(20000)])
        elif scenario == 'window-overflow': send(WindowUpdateFrame(0, window_increment=0x7fffffff))
        elif scenario == 'stream-window-overflow': send(HeadersFrame(1, req('/hold'), flags=['END_HEADERS', 'END_STREAM']), WindowUpdateFrame(1, window_increment=0x7fffffff), HeadersFrame(3, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'data-after-end': send(HeadersFrame(1, req('/hold'), flags=['END_HEADERS', 'END_STREAM']), DataFrame(1, b'late'), HeadersFrame(3, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'malformed': send(HeadersFrame(1, enc.encode([(':method', 'GET'), (':path', '/')]), flags=['END_HEADERS', 'END_STREAM']), HeadersFrame(3, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'over-window': send(HeadersFrame(1, req('/hold'), flags=['END_HEADERS']), *[DataFrame(1, b'x' * 16384) for _ in range(20)], HeadersFrame(3, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'header-list-too-large':
            b = enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/'), ('big', 'v' * 40000)], huffman=False)
            send(HeadersFrame(1, b[:16000], flags=['END_STREAM']), ContinuationFrame(1, b[16000:32000]), ContinuationFrame(1, b[32000:], flags=['END_HEADERS']))
        elif scenario == 'field-values':
            send(HeadersFrame(1, enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/'), ('x-v', b'a\x01b')]), flags=['END_HEADERS', 'END_STREAM']),
                 HeadersFrame(3, enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/'), ('x-v', b'a\x7fb')]), flags=['END_HEADERS', 'END_STREAM']),
                 HeadersFrame(5, enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/x-v'), ('x-v', b'caf\xc3\xa9\tb \xff~')]), flags=['END_HEADERS', 'END_STREAM']))
        elif scenario == 'zero-window':
            send(SettingsFrame(0, settings={4: 0}), HeadersFrame(1, req('/'), flags=['END_HEADERS', 'END_STREAM']))
        buf = b''; credited = False
        while True:
            try: chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout): break
            if not chunk: break
            buf += chunk
            while len(buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length: break
                f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
                if isinstance(f, GoAwayFrame): print('GOAWAY', f.error_code, flush=True)
                elif isinstance(f, RstStreamFrame): print('RST', f.stream_id, f.error_code, flush=True)
                elif isinstance(f, HeadersFrame): print('HEADERS', f.stream_id, dict(hpack.Decoder().decode(f.data)).get(':status'), flush=True)
                elif isinstance(f, DataFrame):
                    print('DATA', f.stream_id, len(f.data), 'END_STREAM' in f.flags, flush=True)
                    if 'END_STREAM' in f.flags and scenario != 'decreasing-ids': s.close(); sys.exit(0)
                elif isinstance(f, SettingsFrame) and 'ACK' not in f.flags:
                    send(SettingsFrame(0, flags=['ACK']))
                    if scenario == 'zero-window' and not credited: pass
                if scenario == 'zero-window' and isinstance(f, HeadersFrame) and not credited:
                    credited = True; print('CREDIT', flush=True); send(WindowUpdateFrame(1, window_increment=100))
        """;

    [Theory]
    [InlineData("data-on-0", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("headers-even", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("decreasing-ids", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("ping-flood", (uint)Http2ErrorCode.EnhanceYourCalm)]
    [InlineData("settings-flood", (uint)Http2ErrorCode.EnhanceYourCalm)]
    [InlineData("rst-flood", (uint)Http2ErrorCode.EnhanceYourCalm)]
    [InlineData("continuation-flood", (uint)Http2ErrorCode.EnhanceYourCalm)]
    [InlineData("window-overflow", (uint)Http2ErrorCode.FlowControlError)]
    public async Task RunAsync_ConnectionError_GoAwayWithTheCode_OthersServed(string scenario, uint expected)
    {
        await using var server = await Http2TestServer.StartAsync();

        var events = await RunClientAsync(server, scenario);
        var (exit, output, error) = await PeerProcess.RunAsync("curl", ["-sS", "--http2-prior-knowledge", server.Url("/fixed")]);

        Assert.Contains($"GOAWAY {expected}", events);
        Assert.True(exit == 0 && output == "hello from h2", error);
        Assert.Empty(server.Faults);
    }

    [Theory]
    [InlineData("stream-window-overflow", 1, (uint)Http2ErrorCode.FlowControlError)]
    [InlineData("data-after-end", 1, (uint)Http2ErrorCode.StreamClosed)]
    [InlineData("malformed", 1, (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("over-window", 1, (uint)Http2ErrorCode.FlowControlError)]
    public async Task RunAsync_StreamError_ResetsOnlyThatStream(string scenario, int stream, uint expected)
    {
        await using var server = await Http2TestServer.StartAsync();

        var events = await RunClientAsync(server, scenario);

        Assert.Contains($"RST {stream} {expected}", events);
        Assert.Contains("HEADERS 3 200", events);
        Assert.Contains($"DATA 3 {TestHandler.Fixed.Length} True", events);
        Assert.DoesNotContain(events, e => e.StartsWith("GOAWAY", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_HeaderListOverTheLimit_Answers431()
    {
        await using var server = await Http2TestServer.StartAsync();

        var events = await RunClientAsync(server, "header-list-too-large", expectEnd: false);

        Assert.Contains("HEADERS 1 431", events);
        Assert.Equal(["431: header list over SETTINGS_MAX_HEADER_LIST_SIZE"], server.Handler.Refusals);
    }

    [Fact]
    public async Task RunAsync_FieldValueWithControlBytes_Answers400_ObsTextIsForwarded_ConnectionServesOn()
    {
        await using var server = await Http2TestServer.StartAsync();

        var events = await RunClientAsync(server, "field-values");

        Assert.Contains("HEADERS 1 400", events);
        Assert.Contains("HEADERS 3 400", events);
        Assert.Contains("HEADERS 5 200", events);

        // The handler hears of each (to count and log it), without the value.
        Assert.Equal(["400: a field value with a control character", "400: a field value with a control character"], server.Handler.Refusals);

        // obs-text (RFC 9110 5.5) reaches the handler as sent, as on the HTTP/1 front: "caf\xc3\xa9\tb \xff~" is 10 bytes.
        Assert.Contains(events, e => e.StartsWith("DATA 5 10 ", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.StartsWith("GOAWAY", StringComparison.Ordinal) || e.StartsWith("RST", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_ZeroWindowClient_DataWaitsForItsWindowUpdate()
    {
        await using var server = await Http2TestServer.StartAsync();

        var events = await RunClientAsync(server, "zero-window");

        var credit = events.IndexOf("CREDIT");
        Assert.True(credit > events.IndexOf("HEADERS 1 200"));
        Assert.Equal($"DATA 1 {TestHandler.Fixed.Length} True", events[credit + 1]);
    }

    private static async Task<List<string>> RunClientAsync(Http2TestServer server, string scenario, bool expectEnd = true)
    {
        var (_, output, error) = await PeerProcess.RunAsync("/usr/bin/python3", ["-c", Client, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario], timeout: TimeSpan.FromSeconds(90));
        var events = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        Assert.True(!expectEnd || events.Count > 0, error);
        return events;
    }
}
