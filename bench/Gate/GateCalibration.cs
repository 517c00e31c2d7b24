using System.Globalization;
using System.Text;
using System.Text.Json;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>What <c>bench gate --calibrate</c> was asked to do.</summary>
/// <param name="Sessions">Independent sessions (fresh backend and proxies each).</param>
/// <param name="Reps">Repetitions per session, each running all three builds.</param>
/// <param name="GateReps">Repetitions a gate run has: each trial is this many repetitions of a session.</param>
/// <param name="TargetGrowth">Growth of the p50 overhead the injected delay is sized for.</param>
/// <param name="Delays">Busy waits (µs per chunk, µs per request) to inject; null sizes them from a pilot.</param>
/// <param name="From">Re-analyse the samples of earlier calibrations (comma-separated files, same arms and delays: their sessions pooled) instead of measuring.</param>
internal sealed record CalibrationOptions(GateSettings Settings, int Sessions, int Reps, int GateReps, GatePolicy Policy, double TargetGrowth, (double Chunk, double Request)? Delays, string OutputDirectory, string? ForwarderPath, string? From);

/// <summary>
/// Proves the A/B gate on this machine: each independent session runs three builds side by side
/// as <c>bench gate</c> runs two: the base, a second copy of the same build (A/A: every alarm on
/// it is false) and the DelayInjection build with a busy wait sized to grow the p50 overhead by
/// the target (A/B: every miss on it is a regression let through).
/// </summary>
internal static class GateCalibration
{
    /// <summary>
    /// The arms a calibration runs unless told others (<c>--arms</c>): the tcp and http listeners.
    /// The DelayInjection build waits per chunk on the tcp listener and the link arm's relays, per
    /// request on the http listener and the HTTP/2 arm.
    /// </summary>
    public static readonly IReadOnlyList<string> Arms = ["forwarder", "forwarder-l7"];

    /// <summary>The proxy arms a calibration measured; older records name none and ran <see cref="Arms"/>.</summary>
    public static IReadOnlyList<string> ArmsOf(GateSettings settings) => settings.Arms ?? Arms;

    private const int SubsetsPerSession = 40;

    public static async Task<CalibrationResult> RunAsync(CalibrationOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        if (options.From is { } from)
        {
            return Pool([.. from.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Read)]);
        }

        var load = File.Exists("/proc/loadavg") ? $"load average {(await File.ReadAllTextAsync("/proc/loadavg", cancellationToken).ConfigureAwait(false)).Trim()}" : "not known";
        var forwarder = ForwarderBinary.Locate(options.ForwarderPath, log, rebuild: options.ForwarderPath is null);
        var injectedBuild = ForwarderBinary.Locate(null, log, "DelayInjection", rebuild: true);

        options = options with { Settings = options.Settings with { Arms = ArmsOf(options.Settings) } };
        var (chunkDelay, requestDelay) = options.Delays ?? await SizeDelaysAsync(options, forwarder, log, cancellationToken).ConfigureAwait(false);
        GateBuild[] builds = [new("base", forwarder), new("same", forwarder), new("slowed", injectedBuild, Math.Round(chunkDelay, 2), Math.Round(requestDelay, 2))];
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"injected delay: {builds[2].ChunkDelayMicroseconds} us per chunk (tcp listener, link), {builds[2].RequestDelayMicroseconds} us per request (http listener, HTTP/2)")).ConfigureAwait(false);

        List<CalibrationSession> sessions = [];
        for (var s = 1; s <= options.Sessions; s++)
        {
            await log.WriteLineAsync($"session {s}/{options.Sessions}").ConfigureAwait(false);
            List<GateSample> baseSamples = [], same = [], slowed = [];
            await using var session = await GateSession.StartAsync(options.Settings, builds, log).ConfigureAwait(false);
            await session.WarmAsync(cancellationToken).ConfigureAwait(false);
            for (var rep = 1; rep <= options.Reps; rep++)
            {
                var samples = await session.RunRepAsync(rep, cancellationToken).ConfigureAwait(false);
                baseSamples.AddRange(samples["base"]);
                same.AddRange(samples["same"]);
                slowed.AddRange(samples["slowed"]);
            }

            sessions.Add(new CalibrationSession(baseSamples, same, slowed));
        }

        var result = new CalibrationResult(options.Settings, builds[2].ChunkDelayMicroseconds!.Value, builds[2].RequestDelayMicroseconds!.Value, sessions, Compare.Versions.Machine(), DateTimeOffset.UtcNow, load);
        Directory.CreateDirectory(options.OutputDirectory);
        Write(result, Path.Combine(options.OutputDirectory, "samples.json"));
        return result;
    }

    /// <summary>
    /// Every session cut into gate runs: disjoint blocks of <paramref name="gateReps"/> repetitions
    /// (independent trials) and random subsets of that size (more trials, sharing repetitions). In
    /// each, base against same is an A/A run and base against slowed an A/B run.
    /// </summary>
    public static CalibrationAnalysis Analyse(CalibrationResult result, GatePolicy policy, int gateReps)
    {
        var random = new Random(20261206);
        var arms = ArmsOf(result.Settings);
        var blocks = new TrialCounts(arms);
        var subsets = new TrialCounts(arms);
        foreach (var session in result.Sessions)
        {
            var reps = session.Base.Select(s => s.Rep).Distinct().Order().ToArray();
            for (var b = 0; b + gateReps <= reps.Length; b += gateReps)
            {
                blocks.Add(session, [.. reps[b..(b + gateReps)]], policy);
            }

            for (var k = 0; k < (reps.Length > gateReps ? SubsetsPerSession : 1); k++)
            {
                subsets.Add(session, [.. reps.OrderBy(_ => random.Next()).Take(gateReps)], policy);
            }
        }

        var growth = arms.ToDictionary(arm => arm, arm =>
        {
            var p50 = new GateMetric(arm, GateMetricKind.P50);
            var normal = GateComparison.LowerQuartile([.. result.Sessions.SelectMany(s => p50.Ratios(s.Base))]) - 1;
            var injected = GateComparison.LowerQuartile([.. result.Sessions.SelectMany(s => p50.Ratios(s.Slowed))]) - 1;
            return (normal, injected);
        });
        return new CalibrationAnalysis(policy, gateReps, blocks, subsets, growth);
    }

    /// <summary>Sizes the delays from a pilot: the wait adds to latency one-for-one when the proxy is not saturated.</summary>
    private static async Task<(double Chunk, double Request)> SizeDelaysAsync(CalibrationOptions options, string forwarder, TextWriter log, CancellationToken cancellationToken)
    {
        await log.WriteLineAsync("pilot: sizing the injected delay").ConfigureAwait(false);
        List<GateSample> pilot = [];
        await using (var session = await GateSession.StartAsync(options.Settings, [new GateBuild("base", forwarder)], log).ConfigureAwait(false))
        {
            await session.WarmAsync(cancellationToken).ConfigureAwait(false);
            for (var rep = 1; rep <= 3; rep++)
            {
                pilot.AddRange((await session.RunRepAsync(rep, cancellationToken).ConfigureAwait(false))["base"]);
            }
        }

        // The tcp listener waits once per chunk, and a request and its response are a chunk each;
        // across a link both nodes relay both, four waits a request.
        var arms = ArmsOf(options.Settings);
        var chunk = arms.Contains("forwarder") ? MedianExtraMicroseconds(pilot, "forwarder") / 2 : arms.Contains("forwarder-link") ? MedianExtraMicroseconds(pilot, "forwarder-link") / 4 : 0;
        var request = arms.Contains("forwarder-l7") ? MedianExtraMicroseconds(pilot, "forwarder-l7") : arms.Contains("forwarder-h2") ? MedianExtraMicroseconds(pilot, "forwarder-h2") : 0;
        return (options.TargetGrowth * chunk, options.TargetGrowth * request);
    }

    private static double MedianExtraMicroseconds(IReadOnlyList<GateSample> samples, string arm)
    {
        var direct = samples.Where(s => s.Arm == GateMetric.DirectOf(arm)).ToDictionary(s => s.Rep);
        return Math.Max(0, CompareReportWriter.Median([.. samples.Where(s => s.Arm == arm).Select(s => s.P50Us - direct[s.Rep].P50Us)]));
    }

    public static string Report(CalibrationResult result, IReadOnlyList<CalibrationAnalysis> analyses)
    {
        var chosen = analyses[0];
        var settings = result.Settings;
        var arms = ArmsOf(settings);
        var reps = result.Sessions[0].Base.Select(s => s.Rep).Distinct().Count();
        var text = new StringBuilder();
        text.AppendLine("# Latency gate calibration: A/B against its own base");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured {result.RecordedAt:yyyy-MM-dd HH:mm} UTC on {result.Machine}; load when it started: {result.Load}. {result.Sessions.Count} independent sessions (fresh backend and proxies each), each of {reps} repetitions running three builds side by side as `bench gate --base` runs two: the base, a second copy of the same build (A/A) and the DelayInjection build (A/B). Every process runs on one CPU. A repetition runs {string.Join(" and ", settings.DirectArms)} and each build's {string.Join(", ", arms)}, interleaved: a closed loop of {settings.Connections} connection(s) for {settings.Duration.TotalSeconds:0.#} s in {settings.Slices} slices, the arms taking turns (latency), a closed loop of {settings.MaxConnections} connections for {settings.MaxDuration.TotalSeconds:0.#} s (throughput), an open loop at {settings.OpenRate:0} req/s for {settings.OpenDuration.TotalSeconds:0.#} s (open-loop p99); each session first runs {settings.WarmupReps} unmeasured repetitions.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The injected build busy-waits {result.ChunkDelayMicroseconds} µs per forwarded chunk (tcp listener, link) and {result.RequestDelayMicroseconds} µs per request (http listener, HTTP/2), sized to grow the p50 overhead by about 10%. What it did (lower quartiles over all sessions):");
        text.AppendLine();
        text.AppendLine("| arm | p50 overhead, base | p50 overhead, injected | growth |");
        text.AppendLine("|---|---:|---:|---:|");
        foreach (var (arm, (normal, injected)) in chosen.Growth)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {arm} | {GateReport.Signed(normal)} | {GateReport.Signed(injected)} | {GateReport.Signed((injected / normal) - 1)} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Each trial is one gate run of {chosen.GateReps} repetitions. Independent trials are disjoint blocks of a session's repetitions ({chosen.Blocks.Trials} in all); the 95% intervals (Wilson) are theirs. Resampled trials ({SubsetsPerSession} random subsets per session) share repetitions, so they give a finer rate but no more independence. Detection counts a trial when the injected build's p50 metric of that listener is WORSE.");
        text.AppendLine();
        text.AppendLine("| rule | independent trials | false alarms (A/A) [95% CI] | " + string.Concat(arms.Select(arm => $"{arm} caught [95% CI] | ")) + $"resampled trials: false alarms, {string.Join(", ", arms)} caught |");
        text.AppendLine("|---|---:|---:|" + string.Concat(arms.Select(_ => "---:|")) + "---|");
        foreach (var a in analyses)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| p50 {a.Policy.P50Growth:0.#%}, p99 {a.Policy.P99Growth:0.#%}, throughput {a.Policy.ThroughputGrowth:0.#%}, open p99 {a.Policy.OpenP99Growth:0.#%}, min {a.Policy.MinimumPoints * 100:0.#} pts (open p99 {a.Policy.OpenP99MinimumPoints * 100:0.#}), α {a.Policy.Alpha}{a.Policy.DescribePerArm()}{(a == chosen ? " (the gate's)" : string.Empty)} | {a.Blocks.Trials} | {Rate(a.Blocks.FalseAlarms, a.Blocks.Trials)} | {string.Concat(arms.Select(arm => $"{Rate(a.Blocks.Caught[arm], a.Blocks.Trials)} | "))}{a.Subsets.FalseAlarms}/{a.Subsets.Trials}, {string.Join(", ", arms.Select(arm => $"{a.Subsets.Caught[arm]}/{a.Subsets.Trials}"))} |");
        }

        text.AppendLine();
        text.AppendLine("A/A alarms of the gate's rule by metric (resampled trials), and the noise an allowance must clear: how far the A/A copy's overhead grew over the base's in the 95th-percentile and the worst trial, as a share of the base's overhead and in points of the direct figure (memory: MiB):");
        text.AppendLine();
        text.AppendLine("| metric | A/A trials failing on it | A/A growth, 95th pct: share / points | A/A growth, worst: share / points |");
        text.AppendLine("|---|---:|---:|---:|");
        foreach (var (metric, alarms) in chosen.Subsets.AlarmsByMetric)
        {
            var growth = chosen.Subsets.AaGrowth[metric];
            text.AppendLine(CultureInfo.InvariantCulture, $"| {metric} | {alarms} | {Growth(growth, 0.95)} | {Growth(growth, 1)} |");
        }

        text.AppendLine();
        text.AppendLine("Each metric's overhead per session, base build (lower quartile of its repetitions, as the gate reads it), and how far the A/A copy sat from it:");
        text.AppendLine();
        text.AppendLine("| metric | " + string.Join(" | ", result.Sessions.Select((_, i) => $"s{i + 1} base / same")) + " |");
        text.AppendLine("|---|" + string.Concat(result.Sessions.Select(_ => "---:|")));
        foreach (var metric in GateMetric.All.Where(m => arms.Contains(m.Arm) && m.Reps(result.Sessions[0].Base).Length > 0))
        {
            var cells = result.Sessions.Select(s => $"{GateReport.Overhead(metric.Kind, GateComparison.LowerQuartile(metric.Ratios(s.Base)) - 1)} / {GateReport.Overhead(metric.Kind, GateComparison.LowerQuartile(metric.Ratios(s.Same)) - 1)}");
            text.AppendLine($"| {metric.Name} | {string.Join(" | ", cells)} |");
        }

        return text.ToString();
    }

    private static string Growth(List<(double Share, double Points)> growth, double quantile)
    {
        if (growth.Count == 0)
        {
            return "n/a";
        }

        var share = Quantile([.. growth.Select(g => g.Share)], quantile);
        var points = Quantile([.. growth.Select(g => g.Points)], quantile);
        return string.Create(CultureInfo.InvariantCulture, $"{(double.IsNaN(share) ? "n/a" : GateReport.Signed(share))} / {points:+0.0;-0.0}");
    }

    /// <summary>The <paramref name="quantile"/> of the values that are numbers (a share is NaN where the base had next to no overhead, and NaN sorts first); NaN when none is.</summary>
    internal static double Quantile(double[] values, double quantile)
    {
        var numbers = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return numbers.Length == 0 ? double.NaN : numbers[Math.Max(0, (int)Math.Ceiling(quantile * numbers.Length) - 1)];
    }

    /// <summary>k of n as a rate with its 95% Wilson score interval.</summary>
    public static string Rate(int k, int n)
    {
        if (n == 0)
        {
            return "n/a";
        }

        var (low, high) = Wilson(k, n);
        return string.Create(CultureInfo.InvariantCulture, $"{k}/{n} = {k / (double)n:0.0%} [{low:0.0%}, {high:0.0%}]");
    }

    public static (double Low, double High) Wilson(int k, int n, double z = 1.959964)
    {
        var p = k / (double)n;
        var denominator = 1 + (z * z / n);
        var centre = (p + (z * z / (2 * n))) / denominator;
        var half = z * Math.Sqrt((p * (1 - p) / n) + (z * z / (4.0 * n * n))) / denominator;
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    private static void Write(CalibrationResult result, string path)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("recordedAt", result.RecordedAt);
        json.WriteString("load", result.Load);
        json.WriteString("machine", result.Machine);
        json.WriteNumber("chunkDelayUs", result.ChunkDelayMicroseconds);
        json.WriteNumber("requestDelayUs", result.RequestDelayMicroseconds);
        GateJson.WriteSettings(json, result.Settings);
        json.WriteStartArray("sessions");
        foreach (var session in result.Sessions)
        {
            json.WriteStartObject();
            GateJson.WriteSamples(json, "base", session.Base);
            GateJson.WriteSamples(json, "same", session.Same);
            GateJson.WriteSamples(json, "slowed", session.Slowed);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>
    /// Several runs' sessions as one calibration: each session is independent of the others, so
    /// runs made in separate windows (one per hold of the benchmark lock) add up.
    /// </summary>
    public static CalibrationResult Pool(IReadOnlyList<CalibrationResult> runs)
    {
        var first = runs[0];
        foreach (var other in runs.Skip(1))
        {
            if (Unlike(first, other) is { } field)
            {
                throw new InvalidOperationException($"--from: the calibration of {other.RecordedAt:u} differs from that of {first.RecordedAt:u} in {field}; only like runs pool.");
            }
        }

        return runs.Count == 1 ? first : first with
        {
            Sessions = [.. runs.SelectMany(r => r.Sessions)],
            Load = string.Join("; ", runs.Select(r => $"{r.RecordedAt:HH:mm} UTC: {r.Load}")),
        };
    }

    /// <summary>The first field two runs differ in, with both values; null when their sessions measured alike.</summary>
    private static string? Unlike(CalibrationResult a, CalibrationResult b)
    {
        (string Name, object A, object B)[] fields =
        [
            ("arms", string.Join(",", ArmsOf(a.Settings)), string.Join(",", ArmsOf(b.Settings))),
            ("chunkDelayUs", a.ChunkDelayMicroseconds, b.ChunkDelayMicroseconds),
            ("requestDelayUs", a.RequestDelayMicroseconds, b.RequestDelayMicroseconds),
            ("machine", a.Machine, b.Machine),
            ("connections", a.Settings.Connections, b.Settings.Connections),
            ("duration", a.Settings.Duration, b.Settings.Duration),
            ("slices", a.Settings.Slices, b.Settings.Slices),
            ("maxConnections", a.Settings.MaxConnections, b.Settings.MaxConnections),
            ("maxDuration", a.Settings.MaxDuration, b.Settings.MaxDuration),
            ("warmup", a.Settings.Warmup, b.Settings.Warmup),
            ("warmupReps", a.Settings.WarmupReps, b.Settings.WarmupReps),
            ("backend", a.Settings.Backend, b.Settings.Backend),
            ("openRate", a.Settings.OpenRate, b.Settings.OpenRate),
            ("openDuration", a.Settings.OpenDuration, b.Settings.OpenDuration),
        ];
        return fields.FirstOrDefault(f => !f.A.Equals(f.B)) is { Name: not null } unlike ? string.Create(CultureInfo.InvariantCulture, $"{unlike.Name} ({unlike.A} against {unlike.B})") : null;
    }

    private static CalibrationResult Read(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        return new CalibrationResult(
            GateJson.ReadSettings(root, path),
            GateJson.Field(root, "chunkDelayUs", path).GetDouble(),
            GateJson.Field(root, "requestDelayUs", path).GetDouble(),
            [.. GateJson.Field(root, "sessions", path).EnumerateArray().Select(s => new CalibrationSession(GateJson.ReadSamples(s, "base", path), GateJson.ReadSamples(s, "same", path), GateJson.ReadSamples(s, "slowed", path)))],
            GateJson.Field(root, "machine", path).GetString()!,
            GateJson.Field(root, "recordedAt", path).GetDateTimeOffset(),
            root.TryGetProperty("load", out var load) ? load.GetString()! : "not recorded");
    }
}

/// <summary>One session's samples: the base build's repetitions, those of its A/A copy, and the DelayInjection build's.</summary>
internal sealed record CalibrationSession(IReadOnlyList<GateSample> Base, IReadOnlyList<GateSample> Same, IReadOnlyList<GateSample> Slowed);

/// <summary>A calibration's measurements.</summary>
/// <param name="Load">The machine's load average when the calibration started: other work on a shared machine is its noise.</param>
internal sealed record CalibrationResult(GateSettings Settings, double ChunkDelayMicroseconds, double RequestDelayMicroseconds, IReadOnlyList<CalibrationSession> Sessions, string Machine, DateTimeOffset RecordedAt, string Load);

/// <summary>How one rule fared on a calibration's trials.</summary>
/// <param name="Blocks">Disjoint blocks of repetitions: independent trials.</param>
/// <param name="Subsets">Random subsets of repetitions: more trials, sharing measurements.</param>
/// <param name="Growth">Per proxy arm, the p50 overhead of the base and the injected build.</param>
internal sealed record CalibrationAnalysis(GatePolicy Policy, int GateReps, TrialCounts Blocks, TrialCounts Subsets, IReadOnlyDictionary<string, (double Normal, double Injected)> Growth);

/// <summary>Gate runs judged: A/A alarms and, per proxy arm, A/B p50 regressions caught.</summary>
internal sealed class TrialCounts(IReadOnlyList<string> arms)
{
    public int Trials { get; private set; }

    public int FalseAlarms { get; private set; }

    public Dictionary<string, int> Caught { get; } = arms.ToDictionary(arm => arm, _ => 0);

    public Dictionary<string, int> AlarmsByMetric { get; } = GateMetric.All.Where(m => arms.Contains(m.Arm)).ToDictionary(m => m.Name, _ => 0);

    /// <summary>Per metric, each trial's A/A growth of the overhead: as a share of the base's (NaN when it had next to none) and in points (memory: MiB).</summary>
    public Dictionary<string, List<(double Share, double Points)>> AaGrowth { get; } = GateMetric.All.Where(m => arms.Contains(m.Arm)).ToDictionary(m => m.Name, _ => new List<(double, double)>());

    public void Add(CalibrationSession session, HashSet<int> reps, GatePolicy policy)
    {
        Trials++;
        var baseSamples = Of(session.Base, reps);
        var aa = GateComparison.Compare(baseSamples, Of(session.Same, reps), policy);
        FalseAlarms += GateReport.Passed(aa) ? 0 : 1;
        foreach (var verdict in aa)
        {
            AlarmsByMetric[verdict.Metric.Name] += verdict.Outcome == GateOutcome.Worse ? 1 : 0;
            var growth = verdict.CurrentOverhead - verdict.BaselineOverhead;
            AaGrowth[verdict.Metric.Name].Add((verdict.Change, verdict.Metric.Kind == GateMetricKind.Rss ? growth : growth * 100));
        }

        var ab = GateComparison.Compare(baseSamples, Of(session.Slowed, reps), policy);
        foreach (var arm in arms)
        {
            Caught[arm] += ab.Any(v => v.Metric.Arm == arm && v.Metric.Kind == GateMetricKind.P50 && v.Outcome == GateOutcome.Worse) ? 1 : 0;
        }
    }

    public double FalseAlarmRate => Trials == 0 ? 0 : FalseAlarms / (double)Trials;

    public double CaughtRate(string arm) => Trials == 0 ? 0 : Caught[arm] / (double)Trials;

    private GateSample[] Of(IReadOnlyList<GateSample> samples, HashSet<int> reps)
        => [.. samples.Where(s => reps.Contains(s.Rep) && (GateMetric.IsDirect(s.Arm) || arms.Contains(s.Arm)))];
}
