// A load test written against the scenario library, as a project of your own would:
//
//   dotnet run --project examples/ScenarioExample [-- --url http://host:port] [--rate 100] [--duration 10] [--reports scenario-reports]
//
// Without --url it starts a small HTTP backend of its own on 127.0.0.1 first. Each invocation
// logs in (POST /login) and then fetches a random item (GET /items/{id}); the backend knows 95
// of the 100 ids, so about 5% of the second step are 404s, counted per step. The run is open
// loop at --rate invocations a second after a second of warm-up, prints a live line every
// second, aborts if a threshold breaks, and writes report.md, report.csv and report.html.
// Exit code: 0 when the thresholds held, 1 when one broke, 2 on bad arguments.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Forwarder.Bench.Scenarios;

var options = Options.Parse(args);
if (options is null)
{
    await Console.Error.WriteLineAsync("usage: ScenarioExample [--url http://host:port] [--rate per-second] [--duration seconds] [--reports folder]");
    return 2;
}

using var backend = options.Url is null ? ExampleBackend.Start() : null;
var target = new Uri(options.Url ?? backend!.Url);
using var http = new HttpClient { BaseAddress = target, Timeout = TimeSpan.FromSeconds(5) };

var scenario = Scenario.Create("login-and-browse", async ctx =>
    {
        var login = await Step.Run("login", ctx, async () =>
        {
            using var response = await http.PostAsync(new Uri("/login", UriKind.Relative), new StringContent("user=demo"), ctx.Stopping);
            var body = await response.Content.ReadAsByteArrayAsync(ctx.Stopping);
            return response.IsSuccessStatusCode
                ? Response.Ok(statusCode: (int)response.StatusCode, sizeBytes: body.Length)
                : Response.Fail("login refused", (int)response.StatusCode, body.Length);
        });
        if (!login.IsOk)
        {
            return login;
        }

        return await Step.Run("get item", ctx, async () =>
        {
            using var response = await http.GetAsync(new Uri($"/items/{Random.Shared.Next(1, 101)}", UriKind.Relative), ctx.Stopping);
            var body = await response.Content.ReadAsByteArrayAsync(ctx.Stopping);
            return response.IsSuccessStatusCode
                ? Response.Ok(statusCode: (int)response.StatusCode, sizeBytes: body.Length)
                : Response.Fail($"item: HTTP {(int)response.StatusCode}", (int)response.StatusCode, body.Length);
        });
    })
    .WithWarmUpDuration(TimeSpan.FromSeconds(1))
    .WithLoadSimulations(LoadSimulation.Inject(options.Rate, TimeSpan.FromSeconds(1), options.Duration))
    .WithThresholds(
        Threshold.LatencyBelow(99, TimeSpan.FromSeconds(1), step: "login"),
        Threshold.ErrorRateBelow(0.2, step: "get item"))
    .WithReportingInterval(TimeSpan.FromSeconds(1), Console.Out);

Console.WriteLine($"{scenario.Name}: {options.Rate}/s for {options.Duration.TotalSeconds} s against {target}");
var stats = await ScenarioRunner.RunAsync(scenario);
ScenarioReportWriter.Write(Console.Out, stats);
foreach (var path in await ScenarioReportFiles.WriteAsync(options.Reports, [stats]))
{
    Console.WriteLine($"wrote {path}");
}

return stats.Abort is null && stats.Thresholds.All(t => t.Passed) ? 0 : 1;

/// <summary>The command line.</summary>
internal sealed record Options(string? Url, double Rate, TimeSpan Duration, string Reports)
{
    public static Options? Parse(string[] args)
    {
        var options = new Options(null, 100, TimeSpan.FromSeconds(10), "scenario-reports");
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            var value = args[i + 1];
            options = args[i] switch
            {
                "--url" => options with { Url = value },
                "--rate" when double.TryParse(value, CultureInfo.InvariantCulture, out var rate) && rate > 0 => options with { Rate = rate },
                "--duration" when double.TryParse(value, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 => options with { Duration = TimeSpan.FromSeconds(seconds) },
                "--reports" => options with { Reports = value },
                _ => null,
            };
            if (options is null)
            {
                return null;
            }
        }

        return args.Length % 2 == 0 ? options : null;
    }
}

/// <summary>The backend the example runs against when no --url is given: HttpListener on a free loopback port.</summary>
internal sealed class ExampleBackend : IDisposable
{
    private const int KnownItems = 95;
    private readonly HttpListener _listener = new();

    private ExampleBackend(int port)
    {
        Url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _ = ServeAsync();
    }

    public string Url { get; }

    public static ExampleBackend Start()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new ExampleBackend(port);
    }

    public void Dispose() => _listener.Close();

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Answer(context));
        }
    }

    private static void Answer(HttpListenerContext context)
    {
        var path = context.Request.Url?.AbsolutePath ?? "/";
        var (status, body) = path switch
        {
            "/login" => (200, """{"token":"demo"}"""),
            _ when path.StartsWith("/items/", StringComparison.Ordinal) && int.TryParse(path["/items/".Length..], out var id) && id is >= 1 and <= KnownItems
                => (200, $$"""{"id":{{id}},"name":"item {{id}}"}"""),
            _ => (404, """{"error":"not found"}"""),
        };
        var bytes = System.Text.Encoding.UTF8.GetBytes(body);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength64 = bytes.Length;
        context.Response.OutputStream.Write(bytes);
        context.Response.Close();
    }
}
