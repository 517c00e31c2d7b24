using System.Globalization;
using System.Text;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Compare;

/// <summary>
/// Writes a comparison to <c>perf-reports/NAME/</c>: report.md (medians with their spread, ratios
/// to direct and to the best peer), SVG charts, results.json and one .hgrm per arm and rate, then
/// lists the report in perf-reports/index.md.
/// </summary>
internal static class CompareReportWriter
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static void Write(CompareResult result, string directory)
    {
        Directory.CreateDirectory(directory);
        var markdown = new StringBuilder();
        var options = result.Options;
        markdown.AppendLine(Invariant, $"# {options.Name}");
        markdown.AppendLine();
        markdown.AppendLine(Invariant, $"`bench compare`, {result.StartedAt:yyyy-MM-dd HH:mm} UTC, on {result.Machine}.");
        markdown.AppendLine(Invariant, $"{options.Protocol.ToString().ToUpperInvariant()} through each arm to a {(options.Protocol == CompareProtocol.Http ? $"{options.Backend} hello" : "built-in echo")} backend; {options.Connections} connections, {Format.Duration(options.Duration)} per run after {Format.Duration(options.Warmup)} warm-up, {options.Reps} repetitions interleaved (every arm in turn, then again), every proxy on {(options.ProxyThreads == 1 ? "one thread" : $"{options.ProxyThreads} threads")}, the load generator on one. Figures are medians over the repetitions, with min–max in brackets; latency is from each request's intended start (coordinated omission corrected).");
        markdown.AppendLine();
        WriteTools(markdown, result.Versions, result.Skipped);

        markdown.AppendLine();
        markdown.AppendLine("| arm | what |");
        markdown.AppendLine("|---|---|");
        foreach (var arm in result.Arms)
        {
            markdown.AppendLine(Invariant, $"| {arm} | {ArmCatalog.All[arm].Description} |");
        }

        WriteUnclean(markdown, result.Unclean.Select(r => (r.Arm, r.Rate, r.Rep, r.Stats)));
        foreach (var rate in options.Rates)
        {
            WriteRate(result, rate, directory, markdown);
        }

        File.WriteAllText(Path.Combine(directory, "report.md"), markdown.ToString());
        using (var json = File.Create(Path.Combine(directory, "results.json")))
        {
            CompareJsonWriter.Write(json, result);
        }

        Index(directory, options.Name, Headline(result));
    }

    private static void WriteRate(CompareResult result, double? rate, string directory, StringBuilder markdown)
    {
        var label = RateLabel(rate);
        var slug = rate is { } r ? $"{r:0}" : "max";
        markdown.AppendLine();
        markdown.AppendLine(Invariant, $"## {(rate is null ? "Closed loop (as fast as the connections go)" : $"Open loop at {label}")}");
        markdown.AppendLine();
        markdown.AppendLine(Invariant, $"| arm | req/s | {(rate is null ? "req/s vs direct" : "p50 added to direct")} | p50 | p90 | p99 | p99.9 | max | errors | proxy CPU ms / 1k req | proxy RSS peak |");
        markdown.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        var direct = result.Of("direct", rate);
        foreach (var arm in result.Arms)
        {
            var runs = result.Of(arm, rate);
            if (runs.Count == 0)
            {
                continue;
            }

            var throughput = Spread(runs.Select(r => r.Stats.RequestsPerSecond));
            var vsDirect = direct.Count == 0 || arm == "direct" ? string.Empty
                : rate is null ? string.Create(Invariant, $"{throughput.Median / Median(direct.Select(r => r.Stats.RequestsPerSecond)):0.00}x")
                : $"+{Format.Latency(Math.Max(0, Median(runs.Select(r => (double)r.Stats.Latency.ValueAt(50))) - Median(direct.Select(r => (double)r.Stats.Latency.ValueAt(50)))))}";
            markdown.AppendLine(Invariant, $"| {arm} | {throughput.Median:0} [{throughput.Min:0}–{throughput.Max:0}] | {vsDirect} | {Latency(runs, 50)} | {Latency(runs, 90)} | {Latency(runs, 99)} | {Latency(runs, 99.9)} | {Latency(runs, 100)} | {runs.Sum(r => r.Stats.Failed)} | {Optional(runs.Select(r => r.CpuMsPerThousand), "0.0")} | {Optional(runs.Select(r => r.PeakRssBytes / 1048576.0), "0.0' MiB'")} |");
            using var hgrm = new StreamWriter(Path.Combine(directory, $"{arm}-{slug}.hgrm"));
            PercentileDistributionWriter.Write(hgrm, result.MergedLatency(arm, rate), 5, 1000.0);
        }

        WriteVerdict(result, rate, markdown);
        var charts = CompareCharts.For(result, rate, label, slug);
        markdown.AppendLine();
        foreach (var (file, svg) in charts)
        {
            File.WriteAllText(Path.Combine(directory, file), svg);
            markdown.AppendLine(Invariant, $"![{Path.GetFileNameWithoutExtension(file)}]({file})");
        }
    }

    /// <summary>Each of our arms against the best peer at this rate: who carried more, and whose tail was shorter.</summary>
    private static void WriteVerdict(CompareResult result, double? rate, StringBuilder markdown)
    {
        var peers = result.Arms.Where(a => !ArmCatalog.IsOurs(a) && a != "direct" && result.Of(a, rate).Count > 0).ToArray();
        foreach (var arm in result.Arms.Where(ArmCatalog.IsOurs))
        {
            var ours = result.Of(arm, rate);
            if (ours.Count == 0 || peers.Length == 0)
            {
                continue;
            }

            var best = rate is null
                ? peers.MaxBy(p => Median(result.Of(p, rate).Select(r => r.Stats.RequestsPerSecond)))!
                : peers.MinBy(p => Median(result.Of(p, rate).Select(r => (double)r.Stats.Latency.ValueAt(99))))!;
            var bestRuns = result.Of(best, rate);
            var throughput = Median(ours.Select(r => r.Stats.RequestsPerSecond)) / Median(bestRuns.Select(r => r.Stats.RequestsPerSecond));
            var p99 = Median(ours.Select(r => (double)r.Stats.Latency.ValueAt(99))) / Median(bestRuns.Select(r => (double)r.Stats.Latency.ValueAt(99)));
            var unclean = ours.Concat(bestRuns).Where(r => !r.Stats.Clean).Select(r => r.Arm).Distinct().ToArray();
            markdown.AppendLine();
            markdown.AppendLine(Invariant, $"{(arm == "forwarder" ? "Forwarder" : arm)} vs the best peer here ({best}): **{throughput:0.00}x** the throughput, **{p99:0.00}x** the p99 latency (below 1 is better).{(unclean.Length == 0 ? string.Empty : $" Not a fair comparison: {string.Join(" and ", unclean)} had runs that did not measure cleanly (listed above).")}");
        }
    }

    /// <summary>Lists the runs whose figures are not a working arm's (failures, unfinished requests, rate missed), so no table or verdict passes them off as one.</summary>
    public static void WriteUnclean(StringBuilder markdown, IEnumerable<(string Arm, double? Rate, int Rep, Scenarios.ScenarioStats Stats)> runs)
    {
        var unclean = runs.ToArray();
        if (unclean.Length == 0)
        {
            return;
        }

        markdown.AppendLine();
        markdown.AppendLine(Invariant, $"**{unclean.Length} run(s) did not measure cleanly**; their arms' figures below include failed or unfinished requests (counted as timeouts, latency up to the end of the run):");
        markdown.AppendLine();
        foreach (var (arm, rate, rep, stats) in unclean)
        {
            markdown.AppendLine(Invariant, $"- {arm} at {RateLabel(rate)}, repetition {rep}: {stats.Problems}");
        }
    }

    private static string Headline(CompareResult result)
    {
        var parts = result.Options.Rates.SelectMany(rate => result.Arms.Where(ArmCatalog.IsOurs).Select(arm =>
        {
            var ours = result.Of(arm, rate);
            var direct = result.Of("direct", rate);
            return ours.Count == 0 || direct.Count == 0
                ? null
                : string.Create(Invariant, $"{RateLabel(rate)}: {arm} {Median(ours.Select(r => r.Stats.RequestsPerSecond)):0} req/s, p99 {Format.Latency(Median(ours.Select(r => (double)r.Stats.Latency.ValueAt(99))))}");
        })).OfType<string>();
        return string.Join("; ", parts);
    }

    /// <summary>Adds or replaces the report's line in perf-reports/index.md, next to the report's directory.</summary>
    public static void Index(string directory, string name, string headline)
    {
        var reports = Path.GetDirectoryName(Path.GetFullPath(directory))!;
        var index = Path.Combine(reports, "index.md");
        var line = $"- [{name}]({Path.GetFileName(Path.GetFullPath(directory))}/report.md) — {headline}";
        var lines = File.Exists(index) ? File.ReadAllLines(index).ToList() : ["# Performance reports", ""];
        var existing = lines.FindIndex(l => l.StartsWith($"- [{name}](", StringComparison.Ordinal));
        if (existing >= 0)
        {
            lines[existing] = line;
        }
        else
        {
            lines.Add(line);
        }

        File.WriteAllLines(index, lines);
    }

    private static string Latency(IReadOnlyList<ArmRun> runs, double percentile)
        => Format.Latency(Median(runs.Select(r => (double)(percentile >= 100 ? r.Stats.Latency.Max() : r.Stats.Latency.ValueAt(percentile)))));

    private static string Optional(IEnumerable<double?> values, string format)
    {
        var present = values.OfType<double>().ToArray();
        return present.Length == 0 ? "" : Median(present).ToString(format, Invariant);
    }

    private static string RateLabel(double? rate) => rate is { } r ? string.Create(Invariant, $"{r:0} req/s") : "max";

    public static (double Median, double Min, double Max) Spread(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? (0, 0, 0) : (Median(sorted), sorted[0], sorted[^1]);
    }

    /// <summary>The tools' versions, then the arms left out and why, as a markdown list.</summary>
    public static void WriteTools(StringBuilder markdown, IReadOnlyDictionary<string, string> versions, IReadOnlyList<string> skipped)
    {
        foreach (var (tool, version) in versions)
        {
            markdown.AppendLine(Invariant, $"- {tool}: {version}");
        }

        foreach (var reason in skipped)
        {
            markdown.AppendLine(Invariant, $"- skipped {reason}");
        }
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return 0;
        }

        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
