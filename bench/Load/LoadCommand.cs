using System.Net;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary><c>bench load</c>: one target, one scenario whose invocation is one request on a worker's own connection.</summary>
internal static class LoadCommand
{
    public static Scenario CreateScenario(LoadOptions options)
        => CreateScenario(options, _ => options switch
        {
            { Url: { } url, Http2: true } => new H2LoadClient(url),
            { Url: { } url } => new HttpLoadClient(url, options.Close),
            { Udp: { } udp } => new UdpLoadClient(udp, options.Size),
            _ => new EchoLoadClient(options.Tcp!, options.Size),
        });

    /// <summary>The scenario with each worker's connection going to the next of several targets in turn (HTTP/1.1 or h2c when the options have a URL, whose path is kept; TCP echo otherwise).</summary>
    public static Scenario CreateScenario(LoadOptions options, IReadOnlyList<IPEndPoint> targets)
    {
        ArgumentOutOfRangeException.ThrowIfZero(targets.Count);
        return CreateScenario(options, workerId =>
        {
            var target = targets[workerId % targets.Count];
            if (options.Url is not { } url)
            {
                return new EchoLoadClient(target, options.Size);
            }

            var at = new UriBuilder(url) { Host = target.Address.ToString(), Port = target.Port }.Uri;
            return options.Http2 ? new H2LoadClient(at) : new HttpLoadClient(at, options.Close);
        });
    }

    private static Scenario CreateScenario(LoadOptions options, Func<int, ILoadClient> clientFor)
    {
        LoadSimulation simulation = options switch
        {
            { Rate: { } rate, RampTo: { } to } => new InjectSimulation(rate, to, options.Duration),
            { Rate: { } rate } => LoadSimulation.Inject(rate, TimeSpan.FromSeconds(1), options.Duration),
            _ => LoadSimulation.KeepConstant(options.Connections, options.Duration),
        };
        return Scenario.Create("load", static ctx => ctx.GetState<ILoadClient>().ExchangeAsync())
            .WithInit(ctx =>
            {
                var client = clientFor(ctx.WorkerId);
                ctx.State = client;
                ctx.OnTimeout = client.Abort;
                return ValueTask.CompletedTask;
            })
            .WithClean(ctx => ctx.GetState<ILoadClient>().DisposeAsync())
            .WithLoadSimulations(simulation)
            .WithMaxConcurrency(options.Connections)
            .WithWarmUpDuration(options.Warmup)
            .WithTimeout(options.Timeout);
    }

    public static async Task<ScenarioStats> RunAsync(LoadOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var mode = options.OpenLoop
            ? $"open loop at {options.Rate:0.##} req/s{(options.RampTo is { } to ? $" ramping to {to:0.##}" : string.Empty)}"
            : "closed loop";
        await output.WriteLineAsync($"Running {Format.Duration(options.Duration)} test @ {options.Target}").ConfigureAwait(false);
        await output.WriteLineAsync($"  {options.Threads} threads and {options.Connections} connections, {mode}, warm-up {Format.Duration(options.Warmup)}").ConfigureAwait(false);

        var scenario = CreateScenario(options);
        await using var hlog = options.HlogPath is { } path ? new LatencyIntervalLog(path, options) : null;
        if (hlog is not null)
        {
            scenario = scenario.WithLatencyIntervals(LatencyIntervalLog.Interval, hlog.Write);
        }

        var stats = await ScenarioRunner.RunAsync(scenario, cancellationToken).ConfigureAwait(false);
        LoadSummaryWriter.Write(output, options, stats);
        if (options.HgrmPath is { } hgrm)
        {
            await using var writer = new StreamWriter(hgrm);
            Histograms.PercentileDistributionWriter.Write(writer, stats.Latency, 5, 1000.0);
        }

        if (options.JsonPath is { } json)
        {
            await using var stream = File.Create(json);
            LoadJsonWriter.Write(stream, options, stats);
        }

        return stats;
    }
}
