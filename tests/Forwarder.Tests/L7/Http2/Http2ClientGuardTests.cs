using System.Diagnostics;
using System.Globalization;
using System.Net;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2;

/// <summary>
/// What the proxy enforces on HTTP/2 clients itself, per listener: the header timeout, the
/// keep-alive timeout (GOAWAY NO_ERROR once no request is in flight for it), and
/// GOAWAY ENHANCE_YOUR_CALM for PING, SETTINGS and rapid-reset floods. The clients are
/// python3-h2 sending raw frames.
/// </summary>
public sealed class Http2ClientGuardTests
{
    /// <summary>
    /// Modes: idle (preface only), partial (one request, then a HEADERS frame without
    /// END_HEADERS), pause N (a request, N seconds of quiet, another), once (a request, then
    /// waits: prints ended when its stream ended, and eof once the connection closed), ping|settings|reset N (N
    /// such frames, or HEADERS+RST_STREAM pairs, as fast as possible, then a request). Prints
    /// status:N, goaway:CODE:LAST (then stops) and closed, one a line, as they happen.
    /// </summary>
    private const string Client = """
        mode, n = sys.argv[2], int(sys.argv[3])
        s.sendall(c.data_to_send())
        ended = False
        def handle(data):
            global ended
            for e in c.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived): print('status:' + dict(e.headers)[b':status'].decode(), flush=True)
                if isinstance(e, h2.events.StreamEnded): ended = True
                if isinstance(e, h2.events.ConnectionTerminated): print('goaway:%d:%d' % (e.error_code, e.last_stream_id), flush=True); return True
            try: s.sendall(c.data_to_send())
            except OSError: return True
            return False
        def pump(until_ended):
            global ended
            ended = False
            while not (until_ended and ended):
                d = s.recv(65536)
                if not d: print('closed', flush=True); return False
                if handle(d): return False
            return True
        def request():
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(':method', 'GET'), (':path', '/x'), (':scheme', 'http'), (':authority', 'a')], end_stream=True)
            s.sendall(c.data_to_send())
            return pump(True)
        if mode == 'idle':
            pump(False)
        elif mode == 'partial':
            request()
            s.sendall(bytes([0, 0, 1, 1, 0, 0, 0, 0, c.get_next_available_stream_id()]) + b'\x82')
            pump(False)
        elif mode == 'pause':
            request() and time.sleep(n) or request()
        elif mode == 'once':
            if request(): print('ended', flush=True); pump(False)
            try:
                while s.recv(65536): pass
            except OSError: pass
            print('eof', flush=True)
        else:
            stopped = False
            for i in range(n):
                if mode == 'ping': c.ping(b'%08d' % i)
                elif mode == 'settings': c.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100 + i})
                else:
                    sid = c.get_next_available_stream_id()
                    c.send_headers(sid, [(':method', 'GET'), (':path', '/x'), (':scheme', 'http'), (':authority', 'a')], end_stream=True)
                    c.reset_stream(sid)
                try: s.sendall(c.data_to_send())
                except OSError: stopped = True; pump(False); break
                if i % 20 == 0:
                    s.setblocking(False)
                    try: d = s.recv(65536)
                    except BlockingIOError: d = None
                    s.setblocking(True)
                    if d is not None and (not d or handle(d)): stopped = True; break
            if not stopped: request()
        """;

    [Fact]
    public async Task PrefaceWithoutRequest_ClosedWithGoAway_AfterHeaderTimeout()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "headerTimeout: 1s"));

        var watch = Stopwatch.StartNew();
        var output = await RunAsync(forwarder.EndPoint("web"), "idle", 0);

        Assert.Equal(["goaway:0:0"], output);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"closed after {watch.Elapsed}");
        Assert.Equal(1, forwarder.Metrics.Listener("web").Http2GoAways(Http2GoAwayReason.HeaderTimeout));
    }

    [Fact]
    public async Task HeaderBlockLeftUnfinished_ClosedWithGoAway_NamingTheLastCompleteRequest()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "headerTimeout: 1s"));

        var output = await RunAsync(forwarder.EndPoint("web"), "partial", 0);

        Assert.Equal(["status:200", "goaway:0:1"], output);
        Assert.Single(backend.Requests);
    }

    [Fact]
    public async Task IdleBetweenRequests_LongerThanHeaderTimeout_KeepsTheConnection()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "headerTimeout: 1s"));

        var output = await RunAsync(forwarder.EndPoint("web"), "pause", 3);

        Assert.Equal(["status:200", "status:200"], output);
        Assert.Equal(0, forwarder.Metrics.Listener("web").Http2GoAways(Http2GoAwayReason.HeaderTimeout));
    }

    [Fact]
    public async Task IdleAfterRequest_ClosedWithGoAway_AfterKeepAliveTimeout()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "keepAliveTimeout: 1s"));

        var watch = Stopwatch.StartNew();
        var output = await RunAsync(forwarder.EndPoint("web"), "once", 0);

        Assert.Equal(["status:200", "ended", "goaway:0:1", "eof"], output);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"closed after {watch.Elapsed}");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"closed after {watch.Elapsed}");
        Assert.Equal(1, forwarder.Metrics.Listener("web").Http2GoAways(Http2GoAwayReason.Idle));
    }

    [Fact]
    public async Task RequestLongerThanKeepAliveTimeout_NotCut_GoAwayAfterItEnds()
    {
        var answering = Stopwatch.StartNew();
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            // An upstream slower than the keep-alive timeout: the request is in flight all along.
            await Task.Delay(TimeSpan.FromSeconds(3));
            answering.Restart();
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "slow"));
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "keepAliveTimeout: 1s"));

        var output = await RunAsync(forwarder.EndPoint("web"), "once", 0);

        Assert.Equal(["status:200", "ended", "goaway:0:1", "eof"], output);
        Assert.True(answering.Elapsed >= TimeSpan.FromSeconds(0.9), $"closed {answering.Elapsed} after the response");
        Assert.Equal(1, forwarder.Metrics.Listener("web").Http2GoAways(Http2GoAwayReason.Idle));
    }

    [Theory]
    [InlineData("ping", nameof(Http2GoAwayReason.PingFlood))]
    [InlineData("settings", nameof(Http2GoAwayReason.SettingsFlood))]
    [InlineData("reset", nameof(Http2GoAwayReason.RapidReset))]
    public async Task Flood_ClosedWithEnhanceYourCalm_OtherConnectionsUnharmed(string mode, string reason)
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");
        using var other = H2cClient();
        using (var before = await other.GetAsync(At(web, "/before")))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var output = await RunAsync(web, mode, 20_000);

        Assert.Contains(output, line => line.StartsWith("goaway:11:", StringComparison.Ordinal));
        Assert.DoesNotContain(output, line => line.StartsWith("status:", StringComparison.Ordinal));
        Assert.Equal(1, forwarder.Metrics.Listener("web").Http2GoAways(Enum.Parse<Http2GoAwayReason>(reason)));
        using var after = await other.GetAsync(At(web, "/after"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(HttpVersion.Version20, after.Version);
    }

    [Theory]
    [InlineData("ping")]
    [InlineData("settings")]
    [InlineData("reset")]
    public async Task ControlFramesWithinTheLimit_ConnectionStaysUsable(string mode)
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend)));

        var output = await RunAsync(forwarder.EndPoint("web"), mode, 50);

        Assert.Equal("status:200", output[0]);
        Assert.DoesNotContain(output, line => line.StartsWith("goaway:", StringComparison.Ordinal));
    }

    /// <summary>Runs the python client against the listener; its output lines.</summary>
    private static async Task<string[]> RunAsync(IPEndPoint listener, string mode, int count)
        => (await PythonH2Client.OutputAsync(listener, Client, [mode, count.ToString(CultureInfo.InvariantCulture)])).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
