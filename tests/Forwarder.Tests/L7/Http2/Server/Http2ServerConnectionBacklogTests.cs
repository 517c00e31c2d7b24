using System.Diagnostics;
using System.Globalization;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// A client that grants the largest windows, sends GET after GET and does not read its socket:
/// the responses it does not take stay bounded (the reader stops taking its frames, whole
/// responses go the ordinary way), another client is served meanwhile, and once it reads, what
/// it gets is intact, and the queue's grown buffer is let go.
/// </summary>
public sealed class Http2ServerConnectionBacklogTests
{
    private const int Requests = 20_000;

    /// <summary>
    /// argv: port path count. Sends the GETs from a thread as the socket takes them; reads nothing
    /// until a line on stdin, then reads until every stream ended or was refused (or the
    /// connection closed) and prints "ended E refused R bad B goaway G".
    /// </summary>
    private const string Client = """
        import socket, sys, threading, hpack
        from hyperframe.frame import *
        port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(('127.0.0.1', port)); s.settimeout(120)
        enc = hpack.Encoder()
        s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0, settings={4: 0x7fffffff}).serialize()
                  + WindowUpdateFrame(0, window_increment=0x7fffffff - 65535).serialize())
        def send():
            try:
                for i in range(count):
                    b = enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', path)])
                    s.sendall(HeadersFrame(2 * i + 1, b, flags=['END_HEADERS', 'END_STREAM']).serialize())
            except OSError: pass
        threading.Thread(target=send, daemon=True).start()
        print('sending', flush=True); sys.stdin.readline()
        expect = [int(x) for x in sys.argv[4:]]
        buf, ended, refused, bad, goaway, got = b'', 0, 0, 0, 0, {}
        dec = hpack.Decoder(); dec.max_allowed_table_size = 65536
        while ended + refused < count and not goaway:
            try: chunk = s.recv(1 << 20)
            except (ConnectionResetError, socket.timeout): break
            if not chunk: break
            buf += chunk
            while len(buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length: break
                f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
                if isinstance(f, SettingsFrame) and 'ACK' not in f.flags: s.sendall(SettingsFrame(0, flags=['ACK']).serialize())
                elif isinstance(f, GoAwayFrame): goaway += 1
                elif isinstance(f, RstStreamFrame):
                    if f.error_code == 7: refused += 1
                    else: bad += 1
                elif isinstance(f, HeadersFrame):
                    h = dict(dec.decode(f.data))
                    if ':status' in h: got[f.stream_id] = [h[':status'], len(h.get('x-pad', ''))]
                    if 'END_STREAM' in f.flags: ended += 1
                elif isinstance(f, DataFrame):
                    got[f.stream_id].append(len(f.data))
                    if 'END_STREAM' in f.flags: ended += 1
        for sid, r in got.items():
            if [r[0], r[1], sum(r[2:])] != [expect[0] and str(expect[0]), expect[1], expect[2]]: bad += 1
        print('ended', ended, 'refused', refused, 'bad', bad, 'goaway', goaway, flush=True)
        """;

    [Theory]
    [InlineData("/whole", 200, 0, 1000)]
    [InlineData("/head", 204, 1000, 0)]
    public async Task ClientNotReading_QueuedOutputStaysBounded_OthersServed_ResponsesIntact(string path, int status, int pad, int body)
    {
        await using var server = await Http2TestServer.StartAsync();
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true };
        foreach (var argument in new[] { "-c", Client, server.Port.ToString(CultureInfo.InvariantCulture), path, Requests.ToString(CultureInfo.InvariantCulture), $"{status}", $"{pad}", $"{body}" })
        {
            start.ArgumentList.Add(argument);
        }

        using var client = Process.Start(start)!;
        try
        {
            Assert.Equal("sending", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)));
            await Eventually.TrueAsync(() => !server.Connections.IsEmpty, "the client connected");
            var connection = Assert.Single(server.Connections);

            // Without the bound every request is answered into the queue (megabytes of it).
            await Eventually.TrueAsync(() => connection.ReaderPaused || server.Handler.Completed == Requests, () => $"{server.Handler.Completed} handled, {connection.QueuedControlBytes} bytes queued", TimeSpan.FromSeconds(90));
            Assert.InRange(connection.QueuedControlBytes, 0, 128 * 1024);
            Assert.InRange(server.Handler.Completed, 1, Requests - 1);

            var (exit, output, error) = await PeerProcess.RunAsync("curl", ["-sS", "--http2-prior-knowledge", server.Url("/fixed")]);
            Assert.True(exit == 0 && output == "hello from h2", error);

            await client.StandardInput.WriteLineAsync("read");
            await client.StandardInput.FlushAsync();
            var line = await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(120));
            var words = line!.Split(' ');
            int Count(string name) => int.Parse(words[Array.IndexOf(words, name) + 1], CultureInfo.InvariantCulture);
            Assert.True(Count("bad") == 0 && Count("ended") > 0, line);
            Assert.True(Count("ended") + Count("refused") == Requests || Count("goaway") > 0, line);

            // The burst grew the control queue past a batch: once drained it is not kept.
            await Eventually.TrueAsync(() => connection.QueuedControlBytes == 0, () => $"{connection.QueuedControlBytes} bytes still queued");
            Assert.InRange(connection.ControlCapacity, 0, 64 * 1024);
            Assert.Empty(server.Faults);
        }
        finally
        {
            client.Kill();
            await client.WaitForExitAsync();
        }
    }
}
