using Microsoft.AspNetCore.Http;
using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7;

namespace Forwarder.Tests.Runtime;

/// <summary>The shutdown sequence of the real executable on SIGTERM: delay, stop accepting, drain, exit 0.</summary>
public sealed class ShutdownSignalsTests : IDisposable
{
    private const int SigTerm = 15;
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-shutdown-").FullName;

    [Fact]
    public async Task SigTerm_ConnectionsFinishingWithinTheReloadedDrainTimeout_CompleteAndExitZero()
    {
        await using var echo = TcpTestServer.Echo();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = new HttpTestBackend(async (_, socket) =>
        {
            // Bounded, so a failing test does not hang in the backend's disposal.
            await answer.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "late but whole"));
            return false;
        });
        var path = Path.Combine(_directory, "forwarder.yaml");
        await File.WriteAllTextAsync(path, Config("1s", echo, slow));
        using var forwarder = ForwarderProcess.Start("--config", path);
        var tcpPort = await forwarder.ListenerPortAsync("front");
        var httpPort = await forwarder.ListenerPortAsync("web");

        // The drain timeout that counts is the one running when the signal comes, not the one at start.
        await File.WriteAllTextAsync(path, Config("8s", echo, slow));
        await forwarder.WaitForOutputAsync("Reloaded ");

        using var tcp = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, tcpPort));
        await SocketClient.AssertEchoAsync(tcp, "before SIGTERM");
        using var http = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, httpPort));
        await HttpTestBackend.SendAsync(http, "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
        await Eventually.TrueAsync(() => slow.Requests.Count == 1, "the request reaches the slow upstream");

        forwarder.Signal(SigTerm);
        await forwarder.WaitForOutputAsync("Stopped accepting; draining 2 open connections for up to 00:00:08");

        // Past System.CommandLine's 2 s, which used to end the process with 143 here.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.False(forwarder.HasExited, $"the forwarder exited during the drain:\n{forwarder.Output}");
        await SocketClient.AssertEchoAsync(tcp, "five seconds into the drain");
        answer.SetResult();
        var (status, _, body) = await Http1ProxyTests.ReadResponseAsync(new SocketReader(http));
        Assert.Equal(200, status);
        Assert.Equal("late but whole", body);

        tcp.Shutdown(SocketShutdown.Send);
        Assert.Empty(await SocketClient.ReceiveToEndAsync(tcp));
        http.Close();
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, forwarder.ExitCode);
        Assert.Contains("All connections drained", forwarder.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Drain deadline reached", forwarder.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigTerm_Http2StreamInFlight_GetsItsWholeResponseWithinTheDrain()
    {
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            reached.TrySetResult();
            await answer.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await context.Response.WriteAsync("late but whole");
        });
        var path = Path.Combine(_directory, "h2.yaml");
        await File.WriteAllTextAsync(path, Http2Config(slow.Port));
        using var forwarder = ForwarderProcess.Start("--config", path);
        var httpPort = await forwarder.ListenerPortAsync("web");
        using var client = PriorKnowledgeHttp2Client(TimeSpan.FromSeconds(60));

        // HTTP/2 with prior knowledge both sides: the stream goes upstream over the service's shared
        // HTTP/2 client, which the shutdown once disposed before the drain, failing the stream.
        var response = client.GetAsync($"http://127.0.0.1:{httpPort}/slow");
        await reached.Task.WaitAsync(TimeSpan.FromSeconds(60));
        forwarder.Signal(SigTerm);
        await forwarder.WaitForOutputAsync("Stopped accepting; draining 1 open connections");
        answer.SetResult();

        using var completed = await response;
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal("late but whole", await completed.Content.ReadAsStringAsync());
        client.Dispose();
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, forwarder.ExitCode);
        Assert.DoesNotContain("ObjectDisposedException", forwarder.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigTerm_UnderHttp2Load_NoStreamMeetsADisposedUpstream()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("fine"));
        var path = Path.Combine(_directory, "h2load.yaml");
        await File.WriteAllTextAsync(path, Http2Config(backend.Port));
        using var forwarder = ForwarderProcess.Start("--config", path);
        var httpPort = await forwarder.ListenerPortAsync("web");
        using var client = PriorKnowledgeHttp2Client(TimeSpan.FromSeconds(30));
        var statuses = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        var signalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Streams keep starting on the open connection while the shutdown runs: each either gets
        // its answer or is refused (GOAWAY, then a closed listener), never a proxy error.
        async Task LoopAsync()
        {
            var afterSignal = 0;
            while (afterSignal < 200)
            {
                try
                {
                    using var response = await client.GetAsync($"http://127.0.0.1:{httpPort}/");
                    statuses.Add(response.StatusCode);
                }
                catch (HttpRequestException)
                {
                    if (signalled.Task.IsCompleted)
                    {
                        return;
                    }

                    throw;
                }

                afterSignal += signalled.Task.IsCompleted ? 1 : 0;
            }
        }

        var loops = Enumerable.Range(0, 16).Select(_ => Task.Run(LoopAsync)).ToArray();
        await Eventually.TrueAsync(() => statuses.Count > 500, "requests flow before the signal");
        forwarder.Signal(SigTerm);
        signalled.SetResult();
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(60));
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, forwarder.ExitCode);
        Assert.True(statuses.All(status => status == HttpStatusCode.OK), string.Join(", ", statuses.GroupBy(s => s).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.DoesNotContain("ObjectDisposedException", forwarder.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigTerm_DuringShutdownDelay_ReadyzIs503_AndNewConnectionsAreStillAccepted()
    {
        await using var echo = TcpTestServer.Echo();
        var path = Path.Combine(_directory, "delay.yaml");
        await File.WriteAllTextAsync(path, $"""
            admin: {"{"} listen: '127.0.0.1:0' {"}"}
            shutdownDelay: 5m
            drainTimeout: 30s
            listeners:
              - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
            services:
              back:
                endpoints: [ {"{"} address: '{echo.Address}' {"}"} ]
            """);
        using var forwarder = ForwarderProcess.Start("--config", path);
        var front = new IPEndPoint(IPAddress.Loopback, await forwarder.ListenerPortAsync("front"));
        using var admin = new HttpClient { BaseAddress = await forwarder.AdminAddressAsync() };
        // Listeners bind before the start-up warm-up ends: wait for ready rather than assume it.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var ready = await admin.GetAsync("/readyz");
            if (ready.StatusCode == HttpStatusCode.OK)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "/readyz never reported ready");
            await Task.Delay(50);
        }

        forwarder.Signal(SigTerm);
        await forwarder.WaitForOutputAsync("SIGTERM received: /readyz reports 503; listeners accept for 00:05:00 more");
        using (var readyz = await admin.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
            Assert.Equal("shutting down\n", await readyz.Content.ReadAsStringAsync());
        }

        using var late = await SocketClient.ConnectAsync(front);
        await SocketClient.AssertEchoAsync(late, "accepted during the shutdown delay");
        Assert.DoesNotContain("Stopped accepting", forwarder.Output, StringComparison.Ordinal);

        // A second signal cuts the delay short: listeners close, the open connection drains.
        forwarder.Signal(SigTerm);
        await forwarder.WaitForOutputAsync("Stopped accepting; draining 1 open connections");
        await SocketClient.AssertEchoAsync(late, "during the drain");
        late.Shutdown(SocketShutdown.Send);
        Assert.Empty(await SocketClient.ReceiveToEndAsync(late));
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, forwarder.ExitCode);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>An http listener whose one service's upstream speaks HTTP/2, with a drain long enough for any test.</summary>
    private static string Http2Config(int upstreamPort) => $"""
        drainTimeout: 30s
        listeners:
          - name: web
            listen: '127.0.0.1:0'
            protocol: http
            routes:
              - service: app
        services:
          app:
            http: {"{"} version: "2" {"}"}
            endpoints: [ {"{"} address: '127.0.0.1:{upstreamPort}' {"}"} ]
        """;

    /// <summary>HTTP/2 with prior knowledge (h2c) to an http:// address.</summary>
    private static HttpClient PriorKnowledgeHttp2Client(TimeSpan timeout) => new(new SocketsHttpHandler())
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = timeout,
    };

    private static string Config(string drainTimeout, TcpTestServer echo, HttpTestBackend http) => $"""
        drainTimeout: {drainTimeout}
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
          - name: web
            listen: '127.0.0.1:0'
            protocol: http
            routes:
              - service: slow
        services:
          back:
            endpoints: [ {"{"} address: '{echo.Address}' {"}"} ]
          slow:
            endpoints: [ {"{"} address: '{http.Address}' {"}"} ]
        """;
}
