namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// The connection-level receive window is credited as handlers consume request bodies, not as
/// DATA arrives: bodies nobody reads hold the connection's window (so one connection cannot make
/// the server buffer streams x stream window), and a reset stream gives its unread bytes back.
/// </summary>
public sealed class Http2ServerConnectionWindowTests
{
    /// <summary>
    /// Sends 200 KB on each of four /hold streams (whose handler never reads), then a PING: prints
    /// "held N" with the connection credit (WINDOW_UPDATE increments) seen by its ACK; then resets
    /// the four streams and pings again: "returned N".
    /// </summary>
    private const string Client = """
        import socket, sys, hpack
        from hyperframe.frame import *
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.settimeout(30)
        enc = hpack.Encoder(); buf = b''
        def frames():
            global buf
            while True:
                while len(buf) >= 9:
                    f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                    if len(buf) < 9 + length: break
                    f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
                    if isinstance(f, SettingsFrame) and 'ACK' not in f.flags: s.sendall(SettingsFrame(0, flags=['ACK']).serialize())
                    yield f
                chunk = s.recv(65536)
                if not chunk: sys.exit('closed')
                buf += chunk
        def credit_until_ack(opaque):
            s.sendall(PingFrame(0, opaque_data=opaque).serialize()); n = 0
            for f in frames():
                if isinstance(f, WindowUpdateFrame) and f.stream_id == 0: n += f.window_increment
                if isinstance(f, PingFrame) and 'ACK' in f.flags and f.opaque_data == opaque: return n
                if isinstance(f, (GoAwayFrame, RstStreamFrame)): sys.exit('unexpected %r' % f)
        s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0).serialize())
        credit_until_ack(b'settings')
        req = [(':method', 'POST'), (':scheme', 'http'), (':authority', 'x'), (':path', '/hold')]
        out = []
        for i in (1, 3, 5, 7):
            out.append(HeadersFrame(i, enc.encode(req), flags=['END_HEADERS']))
            out += [DataFrame(i, b'x' * 10000) for _ in range(20)]
        s.sendall(b''.join(f.serialize() for f in out))
        print('held', credit_until_ack(b'held....'), flush=True)
        s.sendall(b''.join(RstStreamFrame(i, error_code=8).serialize() for i in (1, 3, 5, 7)))
        print('returned', credit_until_ack(b'returned'), flush=True)
        """;

    [Fact]
    public async Task UnreadBodies_HoldTheConnectionWindow_UntilTheirStreamsEnd()
    {
        await using var server = await Http2TestServer.StartAsync();

        var (exit, output, error) = await PeerProcess.RunAsync("/usr/bin/python3", ["-c", Client, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, output + error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("held 0", lines[0]);
        Assert.Equal("returned 800000", lines[1]);
    }

    /// <summary>
    /// argv: port path holds KiB. Fills <c>holds</c> /hold streams' windows (256 KiB each, never
    /// read), then uploads KiB to <c>path</c> within the credit given, reading the response as it
    /// comes: prints "echoed N" (the response body's length) once it ends, or "stalled" if nothing
    /// comes for 30 s.
    /// </summary>
    private const string Stalls = """
        import socket, sys, hpack
        from hyperframe.frame import *
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.settimeout(30)
        enc = hpack.Encoder(); buf = b''
        path, holds = sys.argv[2], int(sys.argv[3])
        conn, stream, echoed, left = 65535, 262144, 0, int(sys.argv[4]) * 1024
        s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0).serialize())
        def req(path): return [(':method', 'POST'), (':scheme', 'http'), (':authority', 'x'), (':path', path)]
        out = []
        for i in (1, 3, 5)[:holds]:
            out.append(HeadersFrame(i, enc.encode(req('/hold')), flags=['END_HEADERS']))
            out += [DataFrame(i, b'x' * 16384) for _ in range(16)]
        out.append(HeadersFrame(7, enc.encode(req(path)), flags=['END_HEADERS']))
        while True:
            # The hold streams' data first, as the connection's credit allows.
            while out and (not isinstance(out[0], DataFrame) or conn >= 16384):
                f = out.pop(0); s.sendall(f.serialize())
                if isinstance(f, DataFrame): conn -= 16384
            n = min(16384, left, conn, stream)
            while not out and n > 0:
                left -= n; conn -= n; stream -= n
                s.sendall(DataFrame(7, b'y' * n, flags=['END_STREAM'] if left == 0 else []).serialize())
                n = min(16384, left, conn, stream)
            try: chunk = s.recv(65536)
            except socket.timeout: print('stalled', echoed, left, flush=True); sys.exit(0)
            if not chunk: sys.exit('closed')
            buf += chunk
            while len(buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length: break
                f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
                if isinstance(f, SettingsFrame) and 'ACK' not in f.flags: s.sendall(SettingsFrame(0, flags=['ACK']).serialize())
                elif isinstance(f, WindowUpdateFrame):
                    if f.stream_id == 0: conn += f.window_increment
                    elif f.stream_id == 7: stream += f.window_increment
                elif isinstance(f, DataFrame) and f.stream_id == 7:
                    echoed += len(f.data)
                    if f.data: s.sendall(WindowUpdateFrame(0, window_increment=len(f.data)).serialize() + WindowUpdateFrame(7, window_increment=len(f.data)).serialize())
                    if 'END_STREAM' in f.flags: print('echoed', echoed, flush=True); sys.exit(0)
                elif isinstance(f, HeadersFrame) and f.stream_id == 7 and 'END_STREAM' in f.flags: print('echoed', echoed, flush=True); sys.exit(0)
                elif isinstance(f, (GoAwayFrame, RstStreamFrame)): sys.exit('unexpected %r' % f)
        """;

    [Fact]
    public async Task StalledStreams_DoNotStopAnotherUploadOnTheConnection()
    {
        await using var server = await Http2TestServer.StartAsync();

        var (exit, output, error) = await PeerProcess.RunAsync("/usr/bin/python3", ["-c", Stalls, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "/echo", "3", "600"], timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, output + error);
        Assert.Equal($"echoed {600 * 1024}", output.Trim());
    }

    [Fact]
    public async Task BodyOfAStreamWhoseReaderCompleted_IsCreditedAtOnce_PastBothWindows()
    {
        await using var server = await Http2TestServer.StartAsync();

        // /drop completes its reader at once and answers when the body has ended: 2 MiB is past
        // the stream's 256 KiB window and the connection's 1 MiB, so it ends only if dropped DATA is credited.
        var (exit, output, error) = await PeerProcess.RunAsync("/usr/bin/python3", ["-c", Stalls, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "/drop", "0", "2048"], timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, output + error);
        Assert.Equal("echoed 0", output.Trim());
    }
}
