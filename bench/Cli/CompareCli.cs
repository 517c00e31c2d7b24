using System.CommandLine;

namespace Forwarder.Bench.Cli;

/// <summary><c>bench compare</c> (arms side by side, interleaved, with a report) and <c>bench fidelity</c> (bench load against wrk).</summary>
internal static class CompareCli
{
    public static Command Create()
    {
        var name = new Option<string>("--name") { Description = "Report name: written to perf-reports/NAME/ and listed in perf-reports/index.md.", DefaultValueFactory = _ => "compare" };
        var protocol = new Option<string>("--protocol") { Description = "http (HTTP/1.1 to a hello backend) or tcp (request/response to an echo backend).", DefaultValueFactory = _ => "http" };
        protocol.AcceptOnlyFromAmong("http", "tcp");
        var arms = new Option<string?>("--arms") { Description = $"Comma-separated arms, run in this order: {string.Join(", ", Compare.ArmCatalog.All.Keys)}. Default: all that carry the protocol." };
        var rates = new Option<string>("--rates") { Description = "Comma-separated open-loop rates in req/s, and/or max for closed loop.", DefaultValueFactory = _ => "max" };
        var reps = new Option<int>("--reps") { Description = "Repetitions; arms are interleaved within each.", DefaultValueFactory = _ => 3 };
        var duration = BenchCli.DurationOption("--duration", "-d", "Measured time per run.", TimeSpan.FromSeconds(10));
        var warmup = BenchCli.DurationOption("--warmup", null, "Load before each run's measurement.", TimeSpan.FromSeconds(2));
        var connections = new Option<int>("--connections", "-c") { Description = "Connections per run.", DefaultValueFactory = _ => 32 };
        var size = new Option<int>("--size") { Description = "TCP: bytes per request.", DefaultValueFactory = _ => 64 };
        var proxyThreads = new Option<int>("--proxy-threads") { Description = "Threads for every proxy (nbthread, worker_processes, tcp.ioThreads).", DefaultValueFactory = _ => 1 };
        var backend = new Option<string>("--backend") { Description = "HTTP backend: nginx (1 worker; the default when installed) or builtin." };
        backend.AcceptOnlyFromAmong("nginx", "builtin");
        var output = new Option<string?>("--out") { Description = "Report directory; default perf-reports/NAME in the repository." };
        var forwarder = new Option<string?>("--forwarder") { Description = "Forwarder binary; default the repository's Release build (built if missing)." };
        var yarp = new Option<string?>("--yarp") { Description = "YARP peer binary for the yarp arm; default bench/yarp's Release build (built if missing)." };
        BenchCli.AtLeast(reps, 1);
        BenchCli.AtLeast(connections, 1);
        BenchCli.AtLeast(size, 1);
        BenchCli.AtLeast(proxyThreads, 1);
        var command = new Command("compare", "Run arms side by side against one backend, interleaved, and write a report with charts.")
        {
            name, protocol, arms, rates, reps, duration, warmup, connections, size, proxyThreads, backend, output, forwarder, yarp,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(arms) is { } list && list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(a => !Compare.ArmCatalog.All.ContainsKey(a)) is { } unknown)
            {
                result.AddError($"--arms: unknown arm '{unknown}'; expected some of: {string.Join(", ", Compare.ArmCatalog.All.Keys)}.");
            }

            if (result.GetValue(rates) is { } text && !BenchCli.TryParseRates(text, out _))
            {
                result.AddError($"--rates: expected numbers above 0 and/or max, comma-separated, got '{text}'.");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var chosenProtocol = parse.GetValue(protocol) == "tcp" ? Compare.CompareProtocol.Tcp : Compare.CompareProtocol.Http;
            BenchCli.TryParseRates(parse.GetValue(rates)!, out var parsedRates);
            var reportName = parse.GetValue(name)!;
            var options = new Compare.CompareOptions(
                reportName,
                chosenProtocol,
                parse.GetValue(arms)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    ?? (chosenProtocol == Compare.CompareProtocol.Http ? Compare.ArmCatalog.HttpDefaults : Compare.ArmCatalog.TcpDefaults),
                parsedRates,
                parse.GetValue(reps),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(connections),
                parse.GetValue(size),
                parse.GetValue(proxyThreads),
                parse.GetValue(backend) ?? (Compare.Tools.Find().Nginx is null ? "builtin" : "nginx"),
                parse.GetValue(output) ?? Path.Combine(Compare.ForwarderBinary.RepositoryRoot() ?? ".", "perf-reports", reportName),
                parse.GetValue(forwarder),
                YarpPath: parse.GetValue(yarp));
            SocketEngineSettings.Apply(1);
            var result = await Compare.CompareRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            Compare.CompareReportWriter.Write(result, options.OutputDirectory);
            await Console.Out.WriteLineAsync($"report: {Path.Combine(options.OutputDirectory, "report.md")}").ConfigureAwait(false);
            return await BenchCli.UncleanExitAsync(result.Unclean.Count).ConfigureAwait(false);
        });
        return command;
    }

    public static Command CreateFidelity()
    {
        var backend = new Option<string>("--backend") { Description = "nginx (1 worker) or builtin.", DefaultValueFactory = _ => "nginx" };
        backend.AcceptOnlyFromAmong("nginx", "builtin");
        var reps = new Option<int>("--reps") { Description = "Repetitions, wrk and bench alternating.", DefaultValueFactory = _ => 5 };
        var duration = BenchCli.DurationOption("--duration", "-d", "Measured time per run.", TimeSpan.FromSeconds(5));
        var warmup = BenchCli.DurationOption("--warmup", null, "bench's warm-up before each run.", TimeSpan.FromSeconds(2));
        var connections = new Option<int>("--connections", "-c") { Description = "Connections for both.", DefaultValueFactory = _ => 32 };
        var output = new Option<string?>("--out") { Description = "Report directory; default perf-reports/bench-fidelity in the repository." };
        BenchCli.AtLeast(reps, 1);
        BenchCli.AtLeast(connections, 1);
        var command = new Command("fidelity", "Compare bench load's closed-loop throughput with wrk's on the same backend.") { backend, reps, duration, warmup, connections, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new Fidelity.FidelityOptions(
                parse.GetValue(backend)!,
                parse.GetValue(reps),
                parse.GetValue(duration),
                parse.GetValue(warmup),
                parse.GetValue(connections),
                parse.GetValue(output) ?? Path.Combine(Compare.ForwarderBinary.RepositoryRoot() ?? ".", "perf-reports", "bench-fidelity"));
            SocketEngineSettings.Apply(1);
            var runs = await Fidelity.FidelityRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            Fidelity.FidelityRunner.WriteReport(options, runs, Compare.Versions.Machine());
            await Console.Out.WriteLineAsync($"report: {Path.Combine(options.OutputDirectory, "report.md")}").ConfigureAwait(false);
            return BenchCli.ExitOk;
        });
        return command;
    }
}
