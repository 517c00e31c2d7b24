using System.CommandLine;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Mesh;

namespace Forwarder.Bench.Cli;

/// <summary><c>bench mesh</c>: node mode against sidecars, the EdgeMesh-vs-Istio and Kmesh-vs-sidecar comparisons on one machine.</summary>
internal static class MeshCli
{
    public static Command Create()
    {
        var protocols = new Option<string>("--protocols") { Description = "Comma-separated: http (HTTP/1.1, L7 proxies) and/or tcp (request/response, L4 proxies).", DefaultValueFactory = _ => "http,tcp" };
        var instances = new Option<int>("--instances", "-k") { Description = "Service instances (K).", DefaultValueFactory = _ => 10 };
        var nodes = new Option<int>("--nodes", "-m") { Description = "Nodes (M) the instances and the client are spread over.", DefaultValueFactory = _ => 2 };
        var arms = new Option<string?>("--arms") { Description = $"Comma-separated arms: {string.Join(", ", MeshArms.All.Keys)}. Default: all." };
        var rates = new Option<string>("--rates") { Description = "Comma-separated open-loop rates in req/s, and/or max for closed loop.", DefaultValueFactory = _ => "20,100,500,1000,max" };
        var reps = new Option<int>("--reps") { Description = "Repetitions; arms are interleaved within each.", DefaultValueFactory = _ => 3 };
        var duration = BenchCli.DurationOption("--duration", "-d", "Measured time per run (longer at low rates, for at least 300 requests).", TimeSpan.FromSeconds(5));
        var warmup = BenchCli.DurationOption("--warmup", null, "Load before each run's measurement.", TimeSpan.FromSeconds(1));
        var connections = new Option<int>("--connections", "-c") { Description = "Client connections, spread over the nodes.", DefaultValueFactory = _ => 16 };
        var output = new Option<string?>("--out") { Description = "Report directory; default perf-reports/mesh in the repository." };
        var forwarder = new Option<string?>("--forwarder") { Description = "Forwarder binary; default the repository's Release build (built if missing)." };
        BenchCli.AtLeast(instances, 1);
        BenchCli.AtLeast(nodes, 1);
        BenchCli.AtLeast(reps, 1);
        BenchCli.AtLeast(connections, 1);
        var command = new Command("mesh", "Node-mode proxies against sidecars: K instances on M nodes, latency at fixed rates and throughput, with the CPU and memory of every proxy; the report sets the published EdgeMesh and Kmesh figures beside ours.")
        {
            protocols, instances, nodes, arms, rates, reps, duration, warmup, connections, output, forwarder,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(protocols) is { } list && Split(list).FirstOrDefault(p => p is not ("http" or "tcp")) is { } unknown)
            {
                result.AddError($"--protocols: expected http and/or tcp, got '{unknown}'.");
            }

            if (result.GetValue(arms) is { } armList && Split(armList).FirstOrDefault(a => !MeshArms.All.ContainsKey(a)) is { } unknownArm)
            {
                result.AddError($"--arms: unknown arm '{unknownArm}'; expected some of: {string.Join(", ", MeshArms.All.Keys)}.");
            }

            if (result.GetValue(rates) is { } text && !BenchCli.TryParseRates(text, out _))
            {
                result.AddError($"--rates: expected numbers above 0 and/or max, comma-separated, got '{text}'.");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            BenchCli.TryParseRates(parse.GetValue(rates)!, out var parsedRates);
            var options = new MeshOptions(
                [.. Split(parse.GetValue(protocols)!).Distinct().Select(p => p == "tcp" ? CompareProtocol.Tcp : CompareProtocol.Http)],
                parse.GetValue(instances),
                parse.GetValue(nodes),
                parse.GetValue(arms) is { } list ? Split(list) : [.. MeshArms.All.Keys],
                parsedRates,
                parse.GetValue(reps),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(connections),
                parse.GetValue(output) ?? Path.Combine(ForwarderBinary.RepositoryRoot() ?? ".", "perf-reports", "mesh"),
                parse.GetValue(forwarder));
            SocketEngineSettings.Apply(1);
            var result = await MeshRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            MeshReportWriter.Write(result, options.OutputDirectory);
            await Console.Out.WriteLineAsync($"report: {Path.Combine(options.OutputDirectory, "report.md")}").ConfigureAwait(false);
            return await BenchCli.UncleanExitAsync(result.Unclean.Count).ConfigureAwait(false);
        });
        return command;
    }

    private static string[] Split(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
