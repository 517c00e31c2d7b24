using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Fidelity;

/// <summary>What <c>bench fidelity</c> was asked to do.</summary>
internal sealed record FidelityOptions(string Backend, int Reps, TimeSpan Duration, TimeSpan Warmup, int Connections, string OutputDirectory);

/// <summary>One repetition: wrk's and our closed-loop throughput, and our p50, on the same target.</summary>
internal sealed record FidelityRun(int Rep, double WrkRequestsPerSecond, double BenchRequestsPerSecond, double BenchP50Microseconds, double FloorP50Microseconds, double FloorP99Microseconds)
{
    public double Ratio => BenchRequestsPerSecond / WrkRequestsPerSecond;
}

/// <summary>
/// Measures the generator against wrk: closed loop, one thread each, the same connections and
/// duration, alternating wrk and <c>bench load</c> on one backend, several times. The ratio of
/// their throughput shows whether our generator is a bottleneck wrk would not be.
/// </summary>
internal static partial class FidelityRunner
{
    public static async Task<IReadOnlyList<FidelityRun>> RunAsync(FidelityOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var wrk = new[] { "/usr/bin/wrk" }.Concat((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Select(d => Path.Combine(d, "wrk"))).FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("wrk is not installed (on Debian: apt-get install wrk).");
        var tools = Tools.Find();
        var workDirectory = Directory.CreateTempSubdirectory("bench-fidelity-").FullName;
        var endpoint = FreePort.Next();
        PeerProcess backend;
        if (options.Backend == "nginx")
        {
            var config = Path.Combine(workDirectory, "nginx.conf");
            await File.WriteAllTextAsync(config, PeerConfigs.NginxBackend(workDirectory, endpoint), cancellationToken).ConfigureAwait(false);
            backend = await PeerProcess.StartAsync("nginx backend", tools.Nginx ?? throw new InvalidOperationException("nginx is not installed; use --backend builtin."), ["-c", config, "-p", workDirectory], endpoint, Path.Combine(workDirectory, "backend.log")).ConfigureAwait(false);
        }
        else
        {
            backend = await PeerProcess.StartAsync("built-in backend", Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", [typeof(FidelityRunner).Assembly.Location, "serve", "--http", endpoint.ToString()], endpoint, Path.Combine(workDirectory, "backend.log")).ConfigureAwait(false);
        }

        var url = new Uri($"http://{endpoint}/");
        List<FidelityRun> runs = [];
        await using (backend)
        {
            for (var rep = 1; rep <= options.Reps; rep++)
            {
                var wrkRate = await RunWrkAsync(wrk, url, options, cancellationToken).ConfigureAwait(false);
                var load = new LoadOptions(url, null, 64, null, null, options.Connections, options.Duration, options.Warmup, 1, TimeSpan.FromSeconds(10), null, null);
                var stats = await ScenarioRunner.RunAsync(LoadCommand.CreateScenario(load), cancellationToken).ConfigureAwait(false);

                // The floor: latency at a light 1,000 req/s straight to the backend is the
                // generator's own overhead plus the backend's and loopback's.
                var floor = await ScenarioRunner.RunAsync(LoadCommand.CreateScenario(load with { Rate = 1000 }), cancellationToken).ConfigureAwait(false);
                foreach (var (what, measured) in new[] { ("closed loop", stats), ("1,000 req/s floor", floor) })
                {
                    if (!measured.Clean)
                    {
                        throw new InvalidOperationException($"bench load's {what} run did not measure cleanly in repetition {rep} ({measured.Problems}); a throughput ratio from it would mean nothing.");
                    }
                }

                var run = new FidelityRun(rep, wrkRate, stats.RequestsPerSecond, stats.Latency.ValueAt(50), floor.Latency.ValueAt(50), floor.Latency.ValueAt(99));
                runs.Add(run);
                await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  rep {rep}/{options.Reps}: wrk {run.WrkRequestsPerSecond:0} req/s, bench {run.BenchRequestsPerSecond:0} req/s, ratio {run.Ratio:0.000}")).ConfigureAwait(false);
            }
        }

        Directory.Delete(workDirectory, recursive: true);
        return runs;
    }

    public static void WriteReport(FidelityOptions options, IReadOnlyList<FidelityRun> runs, string machine)
    {
        Directory.CreateDirectory(options.OutputDirectory);
        var ratio = CompareReportWriter.Spread(runs.Select(r => r.Ratio));
        var text = new StringBuilder();
        text.AppendLine("# Load generator fidelity: `bench load` vs wrk");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"`bench fidelity`, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC, on {machine}. Closed loop, one thread each, {options.Connections} connections, {Format.Duration(options.Duration)} per run ({Format.Duration(options.Warmup)} warm-up for bench, whose JIT needs it), against the {options.Backend} hello backend; wrk and bench alternate, {options.Reps} times.");
        text.AppendLine();
        text.AppendLine("| rep | wrk req/s | bench req/s | bench / wrk | bench p50 (closed loop) | p50 / p99 at 1,000 req/s |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (var run in runs)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {run.Rep} | {run.WrkRequestsPerSecond:0} | {run.BenchRequestsPerSecond:0} | {run.Ratio:0.000} | {Format.Latency(run.BenchP50Microseconds)} | {Format.Latency(run.FloorP50Microseconds)} / {Format.Latency(run.FloorP99Microseconds)} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Median ratio **{ratio.Median:0.000}** (range {ratio.Min:0.000}–{ratio.Max:0.000}); the goal is within ±10% of wrk.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The generator's own overhead, measured as the latency floor straight to the backend at 1,000 req/s (open loop, so each figure includes the pacer's wake-up): p50 **{Format.Latency(CompareReportWriter.Median(runs.Select(r => r.FloorP50Microseconds)))}**, p99 {Format.Latency(CompareReportWriter.Median(runs.Select(r => r.FloorP99Microseconds)))} (medians). Every arm of a comparison carries this floor; the proxies' cost is what they add to it.");
        File.WriteAllText(Path.Combine(options.OutputDirectory, "report.md"), text.ToString());
        CompareReportWriter.Index(options.OutputDirectory, "bench-fidelity", string.Create(CultureInfo.InvariantCulture, $"bench load vs wrk, closed loop: median throughput ratio {ratio.Median:0.000} over {runs.Count} alternating runs"));
    }

    private static async Task<double> RunWrkAsync(string wrk, Uri url, FidelityOptions options, CancellationToken cancellationToken)
    {
        var seconds = Math.Max(1, (int)Math.Round(options.Duration.TotalSeconds));
        using var process = Process.Start(new ProcessStartInfo(wrk, ["-t1", $"-c{options.Connections}", $"-d{seconds}s", url.ToString()]) { RedirectStandardOutput = true, UseShellExecute = false })
            ?? throw new InvalidOperationException("Could not start wrk.");
        var output = await process.StandardOutput.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (output.Contains("Socket errors:", StringComparison.Ordinal) || output.Contains("Non-2xx or 3xx responses:", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"wrk's run had errors; a throughput ratio from it would mean nothing:\n{output}");
        }

        var match = RequestsPerSecond().Match(output);
        return match.Success
            ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"wrk printed no Requests/sec line:\n{output}");
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecond();
}
