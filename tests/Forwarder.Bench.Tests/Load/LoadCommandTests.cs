using System.Net;
using System.Text.Json;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;
using Forwarder.Bench.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Load;

[Collection(TimingCollection.Name)]
public sealed class LoadCommandTests(ITestOutputHelper output)
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    private static LoadOptions Options(Uri? url = null, EndPoint? tcp = null, double? rate = null, TimeSpan? duration = null, int connections = 8) => new(
        url, tcp, 64, rate, null, connections, duration ?? TimeSpan.FromSeconds(1), TimeSpan.Zero, 1, TimeSpan.FromSeconds(10), null, null);

    [Fact]
    public async Task Http_ClosedLoop_AgainstBuiltInBackend_CountsEveryResponse()
    {
        await using var server = new HelloHttpServer(AnyLoopbackPort);
        var console = new StringWriter();
        var directory = Directory.CreateTempSubdirectory("bench-test-");
        var options = Options(new Uri($"http://{server.EndPoint}/hello")) with
        {
            JsonPath = Path.Combine(directory.FullName, "run.json"),
            HgrmPath = Path.Combine(directory.FullName, "run.hgrm"),
        };

        var stats = await LoadCommand.RunAsync(options, console, CancellationToken.None);
        output.WriteLine(console.ToString());

        Assert.True(stats.Ok > 500, $"{stats.Ok} responses");
        Assert.Equal(0, stats.Failed);
        Assert.Equal(stats.Ok, stats.StatusCodes[200]);
        Assert.True(server.Requests >= stats.Ok);
        Assert.Matches(@"\nRequests/sec:\s+[0-9]+\.[0-9]{2}\r?\n", console.ToString());

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(options.JsonPath));
        Assert.Equal("closed", json.RootElement.GetProperty("mode").GetString());
        Assert.Equal(stats.Ok, json.RootElement.GetProperty("ok").GetInt64());
        Assert.True(json.RootElement.GetProperty("latencyUs").GetProperty("p99").GetInt64() >= json.RootElement.GetProperty("latencyUs").GetProperty("p50").GetInt64());
        Assert.Contains("Value     Percentile TotalCount 1/(1-Percentile)", await File.ReadAllTextAsync(options.HgrmPath));
        directory.Delete(recursive: true);
    }

    /// <summary>
    /// <c>--hlog</c>: one histogram a second of the measured window (the warm-up is not logged),
    /// read back by the HdrHistogram package's own reader; together they are the report's
    /// corrected histogram, every request of the run.
    /// </summary>
    [Fact]
    public async Task Http_OpenLoopWithHlog_IntervalsAddUpToTheReport()
    {
        await using var server = new HelloHttpServer(AnyLoopbackPort);
        var directory = Directory.CreateTempSubdirectory("bench-test-");
        var options = Options(new Uri($"http://{server.EndPoint}/"), rate: 200, duration: TimeSpan.FromSeconds(3)) with
        {
            Warmup = TimeSpan.FromSeconds(1),
            HlogPath = Path.Combine(directory.FullName, "run.hlog"),
        };

        var stats = await LoadCommand.RunAsync(options, TextWriter.Null, CancellationToken.None);

        List<HdrHistogram.HistogramBase> intervals;
        await using (var file = File.OpenRead(options.HlogPath))
        {
            intervals = [.. new HdrHistogram.HistogramLogReader(file).ReadHistograms()];
        }

        var merged = InvocationStats.NewHistogram();
        intervals.ForEach(merged.Add);
        output.WriteLine($"{intervals.Count} intervals: {string.Join(", ", intervals.Select(i => i.TotalCount))}; report {stats.Latency.TotalCount}, ok {stats.Ok}");
        Assert.Equal(0, stats.Failed);
        Assert.True(stats.Ok >= 500, $"{stats.Ok} responses");
        Assert.InRange(intervals.Count, 3, 5);
        Assert.Equal(stats.Ok, merged.TotalCount);
        Assert.Equal(stats.Latency.TotalCount, merged.TotalCount);
        Assert.Equal(stats.Latency.GetValueAtPercentile(99), merged.GetValueAtPercentile(99));
        Assert.Equal(stats.Latency.Max(), merged.Max());

        var text = await File.ReadAllTextAsync(options.HlogPath);
        var reader = new HistogramLogReader(new StringReader(text));
        Assert.NotNull(reader.NextIntervalHistogram());
        Assert.Equal(reader.StartTimeSec, reader.BaseTimeSec);
        Assert.InRange(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - reader.StartTimeSec, 1, 120);
        Assert.Contains("#[Histogram log format version 1.3]\n", text, StringComparison.Ordinal);
        Assert.Contains("in microseconds", text, StringComparison.Ordinal);
        directory.Delete(recursive: true);
    }

    [Theory]
    [InlineData(10)]
    [InlineData(400)]
    public async Task Http_OpenLoop_HoldsTheRate(double rate)
    {
        await using var server = new HelloHttpServer(AnyLoopbackPort);
        var options = Options(new Uri($"http://{server.EndPoint}/"), rate: rate, duration: TimeSpan.FromSeconds(2)) with { Warmup = TimeSpan.FromSeconds(1) };

        var stats = await LoadCommand.RunAsync(options, TextWriter.Null, CancellationToken.None);

        Assert.Equal(0, stats.Failed);
        Assert.Equal(rate, stats.RequestedRate!.Value, 3);
        // CI runs this while other projects still compile: a starved moment at the end of the
        // window leaves tickets unsent (as wrk2 would), hence the room below the rate.
        Assert.InRange(stats.RequestsPerSecond, rate * 0.8, rate);
    }

    [Fact]
    public async Task Http_Close_SendsConnectionCloseAndOpensAConnectionPerRequest()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = 0;
        var withoutClose = 0;
        using var stop = new CancellationTokenSource();
        var serving = Task.Run(async () =>
        {
            var response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray();
            while (!stop.IsCancellationRequested)
            {
                using var client = await listener.AcceptSocketAsync(stop.Token);
                Interlocked.Increment(ref accepted);
                var head = new byte[4096];
                var held = 0;
                while (head.AsSpan(0, held).IndexOf("\r\n\r\n"u8) < 0)
                {
                    held += await client.ReceiveAsync(head.AsMemory(held), stop.Token);
                }

                if (!System.Text.Encoding.ASCII.GetString(head, 0, held).Contains("\r\nConnection: close\r\n", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref withoutClose);
                }

                await client.SendAsync(response, stop.Token);
            }
        });
        var options = Options(new Uri($"http://{listener.LocalEndpoint}/"), connections: 1) with { Close = true };

        var stats = await LoadCommand.RunAsync(options, TextWriter.Null, CancellationToken.None);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);

        Assert.Equal(0, stats.Failed);
        Assert.True(stats.Ok > 20, $"{stats.Ok} responses");
        Assert.True(Volatile.Read(ref accepted) >= stats.Ok, $"{accepted} connections for {stats.Ok} responses");
        Assert.Equal(0, Volatile.Read(ref withoutClose));
    }

    [Fact]
    public async Task TcpEcho_ExchangesTheGivenSize()
    {
        await using var server = new EchoServer(AnyLoopbackPort);

        var stats = await LoadCommand.RunAsync(Options(tcp: server.EndPoint) with { Size = 1000 }, TextWriter.Null, CancellationToken.None);

        Assert.True(stats.Ok > 500, $"{stats.Ok} exchanges");
        Assert.Equal(0, stats.Failed);
        Assert.Equal(stats.Ok * 1000, stats.Bytes);
    }

    [Fact]
    public async Task UdpEcho_ExchangesTheGivenSize()
    {
        await using var server = new UdpEchoServer(AnyLoopbackPort);

        var stats = await LoadCommand.RunAsync(Options() with { Udp = server.EndPoint, Size = 1000 }, TextWriter.Null, CancellationToken.None);

        // Loopback may drop a datagram under load (a timeout then); nearly all come back whole.
        Assert.True(stats.Ok > 500, $"{stats.Ok} exchanges");
        Assert.True(stats.Failed <= stats.Ok / 100, $"{stats.Failed} failed: {string.Join(", ", stats.Failures.Select(f => $"{f.Value} {f.Key}"))}");
        Assert.Equal(stats.Ok * 1000, stats.Bytes);
    }

    [Fact]
    public async Task Http_NothingListening_CountsConnectErrors()
    {
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        probe.Bind(AnyLoopbackPort);
        var closedPort = ((IPEndPoint)probe.LocalEndPoint!).Port;

        // The warm-up absorbs the process's first socket exception, which is slow to build.
        var options = Options(new Uri($"http://127.0.0.1:{closedPort}/"), rate: 100, connections: 2) with { Warmup = TimeSpan.FromSeconds(1) };
        var console = new StringWriter();
        var stats = await LoadCommand.RunAsync(options, console, CancellationToken.None);
        output.WriteLine(console.ToString());

        var outcome = $"{stats.Ok} ok, {stats.Failed} failed: {string.Join(", ", stats.Failures.Select(f => $"{f.Value} {f.Key}"))}";
        Assert.True(stats.Ok == 0 && stats.Failed is >= 80 and <= 100, outcome);
        Assert.Equal(stats.Failed, stats.Failures["connection refused"]);
    }

    /// <summary>
    /// The outside review's case: the backend answers 80 of the 400 requests a 2 s run at 200/s
    /// plans, then hangs. Every request it never answered counts, as a timeout whose latency runs
    /// from its intended start to the end of the grace period, so p99 shows the hang, and a run
    /// that completed a fifth of its rate says so and fails.
    /// </summary>
    [Fact]
    public async Task OpenLoop_BackendHangsAfterSomeRequests_UnfinishedCountAsTimeoutsAndTheRunFails()
    {
        await using var server = new HangingHttpBackend(answers: 80);
        var directory = Directory.CreateTempSubdirectory("bench-test-");
        var options = Options(new Uri($"http://{server.EndPoint}/"), rate: 200, duration: TimeSpan.FromSeconds(2)) with { JsonPath = Path.Combine(directory.FullName, "run.json") };
        var console = new StringWriter();

        var stats = await LoadCommand.RunAsync(options, console, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        output.WriteLine(console.ToString());

        Assert.Equal(400, stats.Count);
        Assert.Equal(80, stats.Ok);
        Assert.Equal(320, stats.Unfinished);
        Assert.Equal(320, stats.TimedOut);
        Assert.Equal(320, stats.Failures[InvocationStats.UnfinishedMessage]);
        Assert.Equal(400, stats.Latency.TotalCount);

        // The grace period is 2 s (the 10 s timeout, capped), so every unfinished request waited
        // at least that long past its intended start.
        Assert.True(stats.Latency.GetValueAtPercentile(99) >= 1_990_000, $"p99 {stats.Latency.GetValueAtPercentile(99)} us");
        Assert.True(stats.Latency.GetValueAtPercentile(50) >= 1_990_000, $"p50 {stats.Latency.GetValueAtPercentile(50)} us");
        Assert.InRange(stats.AchievedShare!.Value, 0.15, 0.21);
        Assert.False(stats.RateAchieved);
        Assert.False(stats.Passed);
        Assert.Contains("  Unfinished: 320 of 400 requests not sent or not answered 2s after the end", console.ToString(), StringComparison.Ordinal);
        Assert.Contains("  RATE NOT ACHIEVED: ", console.ToString(), StringComparison.Ordinal);

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(options.JsonPath));
        Assert.Equal(320, json.RootElement.GetProperty("unfinished").GetInt64());
        Assert.Equal(320, json.RootElement.GetProperty("timeouts").GetInt64());
        Assert.False(json.RootElement.GetProperty("rateAchieved").GetBoolean());
        Assert.False(json.RootElement.GetProperty("passed").GetBoolean());
        Assert.True(json.RootElement.GetProperty("latencyUs").GetProperty("p99").GetInt64() >= 1_990_000);
        directory.Delete(recursive: true);
    }

    [Fact]
    public async Task OpenLoop_HealthyBackend_EveryRequestAnsweredNoneUnfinished()
    {
        await using var server = new HelloHttpServer(AnyLoopbackPort);
        var console = new StringWriter();

        var stats = await LoadCommand.RunAsync(Options(new Uri($"http://{server.EndPoint}/"), rate: 100, duration: TimeSpan.FromSeconds(2)), console, CancellationToken.None);
        output.WriteLine(console.ToString());

        // Every ticket is answered; not asserted to pass, as a starved moment on a loaded CI box
        // can leave a few answers past the end (they count as late, not as unfinished).
        Assert.Equal(200, stats.Count);
        Assert.Equal(200, stats.Ok);
        Assert.Equal(0, stats.Unfinished);
        Assert.True(stats.AchievedShare > 0.9, $"achieved {stats.AchievedShare:P1}");
        Assert.DoesNotContain("Unfinished", console.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// wrk2's coordinated-omission experiment: at 1,000 req/s for 10 s the server stalls for 1 s.
    /// Requests meant for the stall wait until it ends, so 10% of them see from ~1 s down to ~0:
    /// the corrected p99 is where 1% of all requests remain, about 0.9 s. Measured from the
    /// actual send, only the ~32 requests in flight at the stall wait, and the p99 stays low.
    /// </summary>
    [Fact]
    public async Task OpenLoop_ServerStallsOneSecond_CorrectedP99SeesItUncorrectedDoesNot()
    {
        await using var server = new HelloHttpServer(AnyLoopbackPort);
        var options = Options(new Uri($"http://{server.EndPoint}/"), rate: 1000, duration: TimeSpan.FromSeconds(10), connections: 32) with { Warmup = TimeSpan.FromSeconds(1) };

        var run = LoadCommand.RunAsync(options, TextWriter.Null, CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(6));
        server.StallFor(TimeSpan.FromSeconds(1));
        var stats = await run;

        var corrected = stats.Latency.GetValueAtPercentile(99) / 1000.0;
        var uncorrected = stats.UncorrectedLatency.GetValueAtPercentile(99) / 1000.0;
        output.WriteLine($"corrected p99 {corrected:0.0} ms, uncorrected p99 {uncorrected:0.0} ms, p90 {stats.Latency.GetValueAtPercentile(90) / 1000.0:0.0} ms, {stats.Ok} ok");
        // Bounds leave room for a CI box still compiling other projects (starvation adds to the
        // corrected figure, which is its point); the two figures stay far apart.
        Assert.InRange(corrected, 750, 2500);
        Assert.True(uncorrected < 250, $"uncorrected p99 {uncorrected} ms");
        Assert.True(corrected > 4 * uncorrected, $"corrected {corrected} ms vs uncorrected {uncorrected} ms");
        Assert.InRange(stats.Ok, 8500, 10_000);
    }
}
