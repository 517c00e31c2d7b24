using System.Globalization;
using System.Net;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Server;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// What the native HTTP/2 front refuses or answers itself, and what it never holds against an
/// endpoint: requests a client got wrong, written exactly as sent by a python3-h2 client (no
/// validation of its own), are the client's fault.
/// </summary>
public sealed class Http2NativeFrontClientFaultTests
{
    /// <summary>
    /// argv[2..5]: method, :path, content-length ("-" for none), body; prints "status N ... end" or
    /// "... reset CODE". Empty DATA frames are not printed: whether END_STREAM rides on the last
    /// DATA frame or on an empty one after it depends on when the upstream's end arrives.
    /// </summary>
    private const string Client = """
method, path = sys.argv[2], sys.argv[3]
length, body = sys.argv[4], sys.argv[5].encode()
headers = [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port), (":path", path)]
if length != "-":
    headers.append(("content-length", length))
c.send_headers(1, headers, end_stream=not body)
if body:
    c.send_data(1, body, end_stream=True)
s.sendall(c.data_to_send())
out = []
while True:
    data = s.recv(65536)
    if not data:
        print("closed " + " ".join(out)); break
    done = False
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            out.append("status " + dict(e.headers)[b":status"].decode())
        elif isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            if e.data:
                out.append("data %d" % len(e.data))
        elif isinstance(e, h2.events.StreamEnded):
            out.append("end"); done = True
        elif isinstance(e, h2.events.StreamReset):
            out.append("reset %d" % e.error_code); done = True
    s.sendall(c.data_to_send())
    if done:
        print(" ".join(out)); break
""";

    private static Task<string> SendAsync(IPEndPoint web, string method, string path, string length = "-", string body = "")
        => PythonH2Client.OutputAsync(web, Client, [method, path, length, body], validating: false);

    [Fact]
    public async Task NonOriginFormPath_AndALyingContentLength_Get400_NeverReachTheUpstream_NorEjectIt()
    {
        var reached = 0;
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            Interlocked.Increment(ref reached);
            await context.Request.Body.CopyToAsync(Stream.Null);
            await context.Response.WriteAsync("read");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port, "outlierDetection: { consecutiveFailures: 1 }"), "http2: native"));
        var web = forwarder.EndPoint("web");

        Assert.StartsWith("status 400", await SendAsync(web, "GET", "http://other.example/x"));
        Assert.StartsWith("status 400", await SendAsync(web, "OPTIONS", "*"));
        Assert.StartsWith("status 400", await SendAsync(web, "POST", "/headers-only", "5"));
        Assert.Equal(0, Volatile.Read(ref reached));

        Assert.StartsWith("status 400", await SendAsync(web, "POST", "/over", "5", "0123456789"));
        Assert.StartsWith("status 400", await SendAsync(web, "POST", "/short", "10", "01234"));
        Assert.Equal(0, forwarder.Runtime.Services["h2"].Endpoints[0].Health.ConsecutiveFailures);

        // The endpoint is still in: a well-formed request is served.
        Assert.Equal("status 200 data 4 end", await SendAsync(web, "POST", "/fine", "5", "01234"));
    }

    [Fact]
    public async Task RefusalsToHead_CarryNoBody()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("ok"));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /h2 } }, service: h2 }", Http2Service("h2", backend.Port), "http2: native"));
        var web = forwarder.EndPoint("web");

        Assert.Equal("status 404 end", await SendAsync(web, "HEAD", "/nowhere"));
        Assert.StartsWith("status 404 data ", await SendAsync(web, "GET", "/nowhere"));
    }

    [Fact]
    public async Task CookieCrumbs_CountAsOneField_AndReachTheUpstream()
    {
        var seen = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            seen.TrySetResult(context.Request.Cookies.Count);
            return context.Response.WriteAsync("ok");
        }, k => k.Limits.MaxRequestHeaderCount = 1000);
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native"));

        // 120 crumbs, each its own field as browsers send them: more than the listener's 100 fields,
        // but one Cookie line in HTTP/1.1. Upstream they stay crumbs (the backend takes that many fields).
        string[] arguments = [.. Enumerable.Range(0, 120).SelectMany(i => new[] { "-H", $"cookie: c{i}=v{i}" }), $"http://127.0.0.1:{forwarder.EndPoint("web").Port}/x"];
        var (exit, output, error) = await PeerProcess.RunAsync("/usr/bin/nghttp", arguments, timeout: TimeSpan.FromSeconds(90));
        Assert.True(exit == 0, output + error);
        Assert.True(output.StartsWith("ok", StringComparison.Ordinal), output + error);
        Assert.Equal(120, await seen.Task.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Settings_BoundStreamsPerConnection_AndAllowAHeaderListAsLargeAsTheListenersHeadLimit()
    {
        const string Settings = """
s.sendall(c.data_to_send())
while True:
    events = c.receive_data(s.recv(65536))
    if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
        print(c.remote_settings.max_concurrent_streams, c.remote_settings.max_header_list_size); break
""";
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("ok"));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native\nmaxHeaderBytes: 65536"));
        var output = await PythonH2Client.OutputAsync(forwarder.EndPoint("web"), Settings, []);

        // 65536 head bytes and HPACK's 32 per field for the listener's 100 fields and four pseudo-headers.
        // 100 streams (what they buffer of request bodies is bounded by the connection window, credited as they are forwarded).
        Assert.Equal($"100 {65536 + (32 * 104)}", output);
    }

    [Fact]
    public async Task FieldValueWithAControlCharacter_Is400_CountedAsRefused_NeverReachesTheUpstream()
    {
        const string Bad = PythonH2Frames.Reader + """
s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.settimeout(60)
enc = hpack.Encoder()
head = [(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/x')]
s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0).serialize()
          + HeadersFrame(1, enc.encode(head + [('x-v', b'a\x01b')]), flags=['END_HEADERS', 'END_STREAM']).serialize()
          + HeadersFrame(3, enc.encode(head + [('x-v', b'a\x7fb')]), flags=['END_HEADERS', 'END_STREAM']).serialize())
out = []
for f in frames(s):
    if isinstance(f, HeadersFrame): out.append(dict(hpack.Decoder().decode(f.data))[':status'])
    if len(out) == 2: break
print(' '.join(out))
""";
        var served = 0;
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            Interlocked.Increment(ref served);
            return context.Response.WriteAsync("served");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native"));

        var (exit, output, error) = await PeerProcess.RunAsync("/usr/bin/python3", ["-c", Bad, forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture)], timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, output + error);
        Assert.Equal("400 400", output.Trim());
        Assert.Contains((400, 2L), forwarder.Metrics.Listener("web").Refused());
        Assert.Equal(0, Volatile.Read(ref served));
    }

    [Fact]
    public async Task HeaderListAboveTheCodecsDefaultBlock_WithinTheListenersHeadLimit_IsForwarded()
    {
        // 90 KB of header (over 64 KiB on the wire even Huffman-coded), under the listener's 128 KiB, then a small request on the same connection.
        const string Big = """
s.sendall(c.data_to_send())
def get(path, extra):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', path)] + extra, end_stream=True)
    s.sendall(c.data_to_send())
    while True:
        data = s.recv(65536)
        if not data: return 'closed'
        for e in c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid: status = dict(e.headers)[b':status'].decode()
            if isinstance(e, h2.events.StreamEnded) and e.stream_id == sid: return status
            if isinstance(e, h2.events.ConnectionTerminated): return 'goaway %d' % e.error_code
        s.sendall(c.data_to_send())
print(get('/big', [('big', 'v' * 90000)]), get('/small', []))
""";
        await using var backend = await KestrelTestBackend.StartHttp2Async(
            context => context.Response.WriteAsync(context.Request.Headers["big"].ToString().Length.ToString(CultureInfo.InvariantCulture)),
            k =>
            {
                k.Limits.MaxRequestHeadersTotalSize = 256 * 1024;
                k.Limits.Http2.MaxRequestHeaderFieldSize = 256 * 1024;
            });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native\nmaxHeaderBytes: 128KiB"));

        var output = await PythonH2Client.OutputAsync(forwarder.EndPoint("web"), Big, []);

        Assert.Equal("200 200", output);
    }
}
