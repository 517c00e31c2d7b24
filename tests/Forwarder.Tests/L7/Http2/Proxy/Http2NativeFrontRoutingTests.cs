using System.Net;
using System.Text.Json;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// What routes, hash keys and limits see of a request on the native HTTP/2 front: the request as
/// its HTTP/1.1 head would read (Host from :authority, cookie crumbs one field), refused where the
/// HTTP/1 front refuses it. Requests are written exactly as given by a python3-h2 client that
/// validates nothing of its own.
/// </summary>
public sealed class Http2NativeFrontRoutingTests
{
    /// <summary>argv[2]: a JSON list of requests, each a list of [name, value]; prints "status body" a line, in order.</summary>
    private const string Client = """
requests = json.loads(sys.argv[2])
for headers in requests:
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(n, v) for n, v in headers], end_stream=True)
    s.sendall(c.data_to_send())
    status, body, done = "?", b"", False
    while not done:
        data = s.recv(65536)
        if not data:
            status, done = "closed", True
        for e in c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                status = dict(e.headers)[b":status"].decode()
            elif isinstance(e, h2.events.DataReceived):
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if e.stream_id == sid:
                    body += e.data
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == sid:
                done = True
        s.sendall(c.data_to_send())
    print(status, body.decode(errors="replace").strip())
""";

    private static async Task<string[]> SendAsync(IPEndPoint web, params string[][][] requests)
    {
        var output = await PythonH2Client.OutputAsync(web, Client, [JsonSerializer.Serialize(requests)], validating: false);
        return output.Split('\n');
    }

    private static string[][] Get(string authority, string path, params string[][] fields)
        => [[":method", "GET"], [":scheme", "http"], [":authority", authority], [":path", path], .. fields];

    [Fact]
    public async Task Limits_HostAndContentLength_AreRefusedAsOnTheHttp1Front_AndNeverReachTheUpstream()
    {
        var reached = 0;
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            Interlocked.Increment(ref reached);
            return context.Response.WriteAsync("ok");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "maxRequestLine: 256\nmaxHeaders: 4\nmaxHeaderBytes: 2048\nhttp2: native"));
        var web = forwarder.EndPoint("web");
        string[][] crumbs = [.. Enumerable.Range(0, 10).Select(i => new[] { "cookie", $"c{i}=v" })];

        // "GET " + path + " HTTP/1.1\r\n" is 256 bytes at the limit: 414 one byte past it.
        var fits = "/" + new string('a', 256 - 16);
        var answers = await SendAsync(
            web,
            Get("a.test", fits),
            Get("a.test", fits + "a"),
            Get("a.test", "/", ["x-1", "1"], ["x-2", "2"], ["x-3", "3"]),
            Get("a.test", "/", ["x-1", "1"], ["x-2", "2"], ["x-3", "3"], ["x-4", "4"]),
            Get("a.test", "/", [.. crumbs, ["x-1", "1"], ["x-2", "2"]]),
            Get("a.test", "/", [.. crumbs, ["x-1", "1"], ["x-2", "2"], ["x-3", "3"]]),
            Get("a.test", "/", ["x-big", new string('v', 1900)]),
            Get("a.test", "/", ["x-big", new string('v', 2050)]),
            Get("a:80@evil.com", "/"),
            Get("evil.com#.x", "/"),
            Get("a.test", "/", ["content-length", "1,2"]),
            Get("a.test", "/", ["content-length", "x"]),
            Get("a.test", "/", ["content-length", "0"], ["content-length", "1"]),
            Get("a.test", "/", ["expect", "nothing"]),
            Get("a.test", "/a#b"));
        Assert.Equal(
            ["200 ok", "414 414 URI Too Long", "200 ok", "431 431 Request Header Fields Too Large", "200 ok", "431 431 Request Header Fields Too Large",
             "200 ok", "431 431 Request Header Fields Too Large", "400 400 Bad Request", "400 400 Bad Request", "400 400 Bad Request", "400 400 Bad Request",
             "400 400 Bad Request", "417 417 Expectation Failed", "400 400 Bad Request"],
            answers);
        Assert.Equal(4, Volatile.Read(ref reached));
    }

    [Fact]
    public async Task HostPathAndHeaderRoutes_AndACookieHashKey_PlaceRequestsAsTheHttp1FrontDoes()
    {
        var backends = new List<KestrelTestBackend>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                var name = $"b{i}";
                backends.Add(await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync(name)));
            }

            var hashed = $"hashed:\n  http: {{ version: \"2\" }}\n  lb:\n    policy: maglev\n    hash:\n      - cookie: session\n  endpoints:\n{string.Concat(backends.Skip(2).Select(b => $"    - address: 127.0.0.1:{b.Port}\n"))}";
            var routes = """
                - { match: { host: api.example.com, headers: [ { name: x-canary, value: "on" } ] }, service: canary }
                - { match: { host: api.example.com, path: { prefix: /v1 } }, service: main }
                - { match: { host: cdn.test }, service: hashed }
                """;
            var services = Http2Service("canary", backends[0].Port) + "\n" + Http2Service("main", backends[1].Port) + "\n" + hashed;
            await using var forwarder = await RunningForwarder.StartAsync(Config(routes, services, "http2: native"));
            var web = forwarder.EndPoint("web");

            var answers = await SendAsync(
                web,
                Get("api.example.com", "/v1/x", ["x-canary", "on"]),
                Get("api.example.com:443", "/v1/x"),
                Get("API.example.com", "/v1/x"),
                Get("api.example.com", "/v2/x", ["x-canary", "off"]),
                [[":method", "GET"], [":scheme", "http"], [":path", "/v1/x"], ["host", "api.example.com"]]);
            Assert.Equal(["200 b0", "200 b1", "200 b1", "404 404 Not Found", "200 b1"], answers);

            // The hash key is the session cookie, whether it came in its own crumb or in one line with others.
            for (var user = 0; user < 12; user++)
            {
                var session = $"session=user-{user}";
                var http1 = (await ExchangeAsync(web, $"GET / HTTP/1.1\r\nHost: cdn.test\r\nCookie: theme=dark; {session}\r\n\r\n")).Body;
                var h2 = await SendAsync(
                    web,
                    Get("cdn.test", "/", ["cookie", "theme=dark"], ["cookie", session]),
                    Get("cdn.test", "/", ["cookie", session], ["cookie", "theme=dark"]),
                    Get("cdn.test", "/", ["cookie", $"theme=dark; {session}"]));
                Assert.Equal([$"200 {http1}", $"200 {http1}", $"200 {http1}"], h2);
            }
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }
}
