using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using Forwarder.Tests.L7.Http2.Server;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// How the native front reads an upstream's failure (RFC 9113 8.7): a connection lost after the
/// request went out may have processed it, so a POST is not sent again; a connection that failed
/// before its SETTINGS is a failed connect, which outlier detection hears of.
/// </summary>
public sealed class Http2NativeFrontUpstreamFailureTests
{
    [Fact]
    public async Task ConnectionLostAfterTheRequestWentOut_APostIs502_NotSentElsewhere()
    {
        // The python3-h2 peer takes /close and drops the connection without a word.
        await using var peer = await Http2PeerServer.StartH2Async("plain");
        var served = new StrongBox<int>();
        await using var serving = await KestrelTestBackend.StartHttp2Async(context =>
        {
            Interlocked.Increment(ref served.Value);
            return context.Response.WriteAsync("served");
        });
        var services = $"app:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 100 }}\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - {{ address: '127.0.0.1:{peer.Port}', weight: 100 }}\n    - {{ address: '127.0.0.1:{serving.Port}', weight: 1 }}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", services, "http2: native"));
        using var client = H2cClient();

        using var post = await client.SendAsync(H2Request(HttpMethod.Post, At(forwarder.EndPoint("web"), "/close")));

        Assert.Equal(HttpStatusCode.BadGateway, post.StatusCode);
        Assert.Equal(0, Volatile.Read(ref served.Value));
    }

    [Fact]
    public async Task ConnectionEndedBeforeItsSettings_IsAFailedConnect_HeldAgainstTheEndpoint()
    {
        await using var peer = await Http2PeerServer.StartH2Async("goaway-first");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", $"app:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 100 }}\n  endpoints:\n    - address: 127.0.0.1:{peer.Port}", "http2: native"));
        using var client = H2cClient();

        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/x"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.InRange(forwarder.Runtime.Services["app"].Endpoints[0].Health.ConsecutiveFailures, 1, 10);
    }

    [Fact]
    public async Task UpstreamThatSendsNoSettings_CountsAsASettingsTimeout_NotAGenericOne()
    {
        // Takes connections and says nothing: not an HTTP/2 server.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    held.Add(await silent.AcceptSocketAsync());
                }
            }
            catch (SocketException)
            {
                // The listener stopped.
            }
            catch (ObjectDisposedException)
            {
                // The listener stopped.
            }
        });
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        try
        {
            await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", $"app:\n  http: {{ version: \"2\" }}\n  connectTimeout: 300ms\n  outlierDetection: {{ consecutiveFailures: 100 }}\n  endpoints:\n    - address: 127.0.0.1:{port}", "http2: native"));
            using var client = H2cClient();

            using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/x"));

            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            var metrics = forwarder.Metrics.Service("app");
            Assert.True(metrics.ConnectErrors(ConnectFailure.SettingsTimeout) >= 1, PrometheusText.Render(forwarder.Metrics, forwarder.Runtime));
            Assert.Equal(0, metrics.ConnectErrors(ConnectFailure.Timeout));
            Assert.Contains("forwarder_upstream_connect_errors_total{service=\"app\",reason=\"settings_timeout\"}", PrometheusText.Render(forwarder.Metrics, forwarder.Runtime), StringComparison.Ordinal);
        }
        finally
        {
            silent.Stop();
            await accepting;
            foreach (var socket in held)
            {
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task UpstreamAllowingNoStreams_IsTheEndpointsFault_RequestsGoElsewhere_HealthIsTold()
    {
        await using var peer = await Http2PeerServer.StartH2Async("zero-streams");
        var served = new StrongBox<int>();
        await using var serving = await KestrelTestBackend.StartHttp2Async(context =>
        {
            Interlocked.Increment(ref served.Value);
            return context.Response.WriteAsync("served");
        });
        var services = $"app:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 100 }}\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - address: 127.0.0.1:{peer.Port}\n    - address: 127.0.0.1:{serving.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: app, timeout: 30s }", services, "http2: native"));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        // One at a time, so round robin gives the zero-stream endpoint its turns.
        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync(At(web, "/x"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("served", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(6, Volatile.Read(ref served.Value));
        Assert.InRange(forwarder.Runtime.Services["app"].Endpoints[0].Health.ConsecutiveFailures, 1, 6);
    }

    [Fact]
    public async Task AReloadThatClosesThePool_LetsARequestInFlightFinish()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var held = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        });
        await using var other = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("other"));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", held.Port), "http2: native"));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        var inFlight = client.GetAsync(At(web, "/held"));
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(60));

        // The service goes away with its endpoint's pool; the request already sent on it stays.
        Assert.True(await forwarder.ReloadAsync(Config("- service: other", Http2Service("other", other.Port), "http2: native")));
        using (var after = await client.GetAsync(At(web, "/x")))
        {
            Assert.Equal("other", await after.Content.ReadAsStringAsync());
        }

        release.SetResult();
        using var response = await inFlight;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("finished", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ClientsThatReadNothing_DoNotStallTheSharedUpstreamConnection()
    {
        // argv: port count. Opens count GETs of /big with a stream window of 0 (it reads nothing), prints "heads" once every head came, then waits.
        const string Stalled = PythonH2Frames.Reader + """
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(('127.0.0.1', port)); s.settimeout(60)
enc = hpack.Encoder()
req = [(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/big')]
s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0, settings={4: 0}).serialize() + b''.join(HeadersFrame(2 * i + 1, enc.encode(req), flags=['END_HEADERS', 'END_STREAM']).serialize() for i in range(count)))
heads = 0
for f in frames(s):
    if isinstance(f, HeadersFrame): heads += 1
    if heads == count: break
print('heads' if heads == count else 'closed after %d heads' % heads, flush=True)
sys.stdin.read()
""";
        const int Streams = 60;
        var chunk = new byte[16 * 1024];
        long written = 0;
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            for (var i = 0; i < 64; i++)
            {
                await context.Response.Body.WriteAsync(chunk);
                Interlocked.Add(ref written, chunk.Length);
            }
        });

        // One upstream connection for every stream: 60 stalled streams x 256 KiB is past its 8 MiB window.
        var services = $"h2:\n  http: {{ version: \"2\", maxConnections: 1 }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", services, "http2: native"));
        var port = forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture);
        using var stalled = Process.Start(new ProcessStartInfo("/usr/bin/python3") { ArgumentList = { "-c", Stalled, port, Streams.ToString(CultureInfo.InvariantCulture) }, RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("heads", await stalled.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            await Eventually.TrueAsync(() => Interlocked.Read(ref written) >= 8L << 20, () => $"the upstream wrote {Interlocked.Read(ref written)} bytes for the stalled streams");

            // Another client's 1 MiB over the same upstream connection.
            var (exit, output, error) = await PeerProcess.RunAsync("curl", ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "30", $"http://127.0.0.1:{port}/big"], timeout: TimeSpan.FromSeconds(60));
            Assert.True(exit == 0, error);
            Assert.Equal($"200 {64 * 16 * 1024}", output);
        }
        finally
        {
            stalled.Kill();
            await stalled.WaitForExitAsync();
        }
    }
}
