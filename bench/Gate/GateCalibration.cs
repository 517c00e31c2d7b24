using System.Globalization;
using System.Text;
using System.Text.Json;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>What <c>bench gate --calibrate</c> was asked to do.</summary>
/// <param name="Sessions">Independent sessions (fresh processes each); every ordered pair is one baseline/current comparison.</param>
/// <param name="Reps">Repetitions per session of the normal arms, and as many of the injected ones.</param>
/// <param name="GateReps">Repetitions a gate run has (the current side of each trial is subsets of this size).</param>
/// <param name="TargetGrowth">Growth of the p50 overhead the injected delay is sized for.</param>
/// <param name="Delays">Busy waits (µs per chunk, µs per request) to inject; null sizes them from a pilot.</param>
/// <param name="From">Re-analyse the samples of an earlier calibration instead of measuring.</param>
internal sealed record CalibrationOptions(GateSettings Settings, int Sessions, int Reps, int GateReps, GatePolicy Policy, double TargetGrowth, (double Chunk, double Request)? Delays, string OutputDirectory, string? ForwarderPath, string? From);

/// <summary>
/// Proves the gate: measures several independent sessions of the normal build and of the
/// DelayInjection build (a busy wait sized to grow the p50 overhead by the target), then runs the
/// gate's comparison on every ordered pair of sessions. Normal against normal gives the false-alarm
/// rate; normal against injected, the detection rate.
/// </summary>
internal static class GateCalibration
{
    private const int SubsetsPerPair = 40;

    public static async Task<CalibrationResult> RunAsync(CalibrationOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        if (options.From is { } from)
        {
            return Read(from);
        }

        var forwarder = ForwarderBinary.Locate(options.ForwarderPath, log, rebuild: options.ForwarderPath is null);
        var injectedBuild = ForwarderBinary.Locate(null, log, "DelayInjection", rebuild: true);

        var (chunkDelay, requestDelay) = options.Delays ?? await SizeDelaysAsync(options, forwarder, log, cancellationToken).ConfigureAwait(false);
        var injected = new InjectedForwarder(injectedBuild, Math.Round(chunkDelay, 2), Math.Round(requestDelay, 2));
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"injected delay: {injected.ChunkDelayMicroseconds} us per chunk (tcp listener), {injected.RequestDelayMicroseconds} us per request (http listener)")).ConfigureAwait(false);

        List<CalibrationSession> sessions = [];
        for (var s = 1; s <= options.Sessions; s++)
        {
            await log.WriteLineAsync($"session {s}/{options.Sessions}").ConfigureAwait(false);
            List<GateSample> normal = [];
            List<GateSample> slowed = [];
            await using var session = await GateSession.StartAsync(options.Settings, forwarder, injected, log).ConfigureAwait(false);
            await session.WarmAsync(cancellationToken).ConfigureAwait(false);
            for (var rep = 1; rep <= options.Reps; rep++)
            {
                // Alternate which build goes first, so neither always follows the other.
                foreach (var isInjected in rep % 2 == 1 ? [false, true] : new[] { true, false })
                {
                    (isInjected ? slowed : normal).AddRange(await session.RunRepAsync(rep, isInjected, cancellationToken).ConfigureAwait(false));
                }
            }

            sessions.Add(new CalibrationSession(normal, slowed));
        }

        var result = new CalibrationResult(options.Settings, injected.ChunkDelayMicroseconds, injected.RequestDelayMicroseconds, sessions, Compare.Versions.Machine(), DateTimeOffset.UtcNow);
        Directory.CreateDirectory(options.OutputDirectory);
        Write(result, Path.Combine(options.OutputDirectory, "samples.json"));
        return result;
    }

    /// <summary>Every ordered pair of sessions, the current side subsampled to a gate run's size: how often the gate fails with nothing changed, and how often it catches the injected delay.</summary>
    /// <param name="pooled">Whether each session is compared with the other sessions pooled (as a baseline recorded over several sessions is) rather than with each other session alone.</param>
    public static CalibrationAnalysis Analyse(CalibrationResult result, GatePolicy policy, int gateReps, bool pooled = false)
    {
        var random = new Random(20261122);
        int trials = 0, falseAlarms = 0;
        var caught = GateMetric.ProxyArms.ToDictionary(arm => arm, _ => 0);
        var alarmsByMetric = GateMetric.All.ToDictionary(m => m.Name, _ => 0);
        var count = result.Sessions.Count;
        var pairs = pooled
            ? Enumerable.Range(0, count).Select(j => (Baseline: Pool(result, Enumerable.Range(0, count).Where(i => i != j)), Current: j))
            : Enumerable.Range(0, count).SelectMany(i => Enumerable.Range(0, count).Where(j => j != i).Select(j => (Baseline: result.Sessions[i].Normal, Current: j)));
        foreach (var (baseline, j) in pairs)
        {
            foreach (var reps in Subsets(result.Sessions[j].Normal, gateReps, random))
            {
                trials++;
                var aa = GateComparison.Compare(baseline, [.. result.Sessions[j].Normal.Where(s => reps.Contains(s.Rep))], policy);
                falseAlarms += GateReport.Passed(aa) ? 0 : 1;
                foreach (var verdict in aa.Where(v => v.Outcome == GateOutcome.Worse))
                {
                    alarmsByMetric[verdict.Metric.Name]++;
                }

                var slowed = GateComparison.Compare(baseline, [.. result.Sessions[j].Injected.Where(s => reps.Contains(s.Rep))], policy);
                foreach (var arm in GateMetric.ProxyArms)
                {
                    caught[arm] += slowed.Any(v => v.Metric.Arm == arm && v.Metric.Kind == GateMetricKind.P50 && v.Outcome == GateOutcome.Worse) ? 1 : 0;
                }
            }
        }

        var growth = GateMetric.ProxyArms.ToDictionary(arm => arm, arm =>
        {
            var p50 = new GateMetric(arm, GateMetricKind.P50);
            var normal = GateComparison.LowerQuartile([.. result.Sessions.SelectMany(s => p50.Ratios(s.Normal))]) - 1;
            var injected = GateComparison.LowerQuartile([.. result.Sessions.SelectMany(s => p50.Ratios(s.Injected))]) - 1;
            return (normal, injected);
        });
        return new CalibrationAnalysis(policy, gateReps, pooled, trials, falseAlarms, alarmsByMetric, caught, growth);
    }

    /// <summary>Normal repetitions of several sessions as one baseline, numbered apart so each proxy run still pairs with its own direct run.</summary>
    private static IReadOnlyList<GateSample> Pool(CalibrationResult result, IEnumerable<int> sessions)
        => [.. sessions.SelectMany(i => result.Sessions[i].Normal.Select(s => s with { Rep = ((i + 1) * 10_000) + s.Rep }))];

    /// <summary>Repetition numbers of the current side of each trial: every subset when there are few, else a fixed number drawn at random.</summary>
    private static IEnumerable<HashSet<int>> Subsets(IReadOnlyList<GateSample> samples, int size, Random random)
    {
        var reps = samples.Select(s => s.Rep).Distinct().Order().ToArray();
        if (reps.Length <= size)
        {
            yield return [.. reps];
            yield break;
        }

        for (var k = 0; k < SubsetsPerPair; k++)
        {
            yield return [.. reps.OrderBy(_ => random.Next()).Take(size)];
        }
    }

    /// <summary>Sizes the delays from a pilot: the wait adds to latency one-for-one when the proxy is not saturated.</summary>
    private static async Task<(double Chunk, double Request)> SizeDelaysAsync(CalibrationOptions options, string forwarder, TextWriter log, CancellationToken cancellationToken)
    {
        await log.WriteLineAsync("pilot: sizing the injected delay").ConfigureAwait(false);
        List<GateSample> pilot = [];
        await using (var session = await GateSession.StartAsync(options.Settings, forwarder, null, log).ConfigureAwait(false))
        {
            await session.WarmAsync(cancellationToken).ConfigureAwait(false);
            for (var rep = 1; rep <= 3; rep++)
            {
                pilot.AddRange(await session.RunRepAsync(rep, injected: false, cancellationToken).ConfigureAwait(false));
            }
        }

        // The tcp listener waits once per chunk, and a request and its response are a chunk each.
        return (options.TargetGrowth * MedianExtraMicroseconds(pilot, "forwarder") / 2, options.TargetGrowth * MedianExtraMicroseconds(pilot, "forwarder-l7"));
    }

    private static double MedianExtraMicroseconds(IReadOnlyList<GateSample> samples, string arm)
    {
        var direct = samples.Where(s => s.Arm == "direct").ToDictionary(s => s.Rep);
        return Math.Max(0, CompareReportWriter.Median([.. samples.Where(s => s.Arm == arm).Select(s => s.P50Us - direct[s.Rep].P50Us)]));
    }

    public static string Report(CalibrationResult result, IReadOnlyList<CalibrationAnalysis> analyses)
    {
        var chosen = analyses[0];
        var text = new StringBuilder();
        text.AppendLine("# Latency gate calibration");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured {result.RecordedAt:yyyy-MM-dd HH:mm} UTC on {result.Machine}: {result.Sessions.Count} independent sessions (fresh backend and proxies each), each with {result.Sessions[0].Normal.Select(s => s.Rep).Distinct().Count()} repetitions of the normal build and as many of the DelayInjection build, alternating. Every process runs on one CPU. A repetition runs direct, forwarder (tcp listener) and forwarder-l7 (http listener) in turn in a closed loop of {result.Settings.Connections} connection(s) for {result.Settings.Duration.TotalSeconds:0.#} s in {result.Settings.Slices} slices, the arms taking turns (latency), then of {result.Settings.MaxConnections} connections for {result.Settings.MaxDuration.TotalSeconds:0.#} s (throughput); each session first runs {result.Settings.WarmupReps} unmeasured repetitions of each build.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The injected build busy-waits {result.ChunkDelayMicroseconds} µs per forwarded chunk (tcp listener) and {result.RequestDelayMicroseconds} µs per request (http listener), meant to grow the p50 overhead by about 10%. What it did (lower quartiles over all sessions):");
        text.AppendLine();
        text.AppendLine("| arm | p50 overhead, normal | p50 overhead, injected | growth |");
        text.AppendLine("|---|---:|---:|---:|");
        foreach (var (arm, (normal, injected)) in chosen.Growth)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {arm} | {normal:+0.0%} | {injected:+0.0%} | {(injected / normal) - 1:+0.0%} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Each trial is one gate run: {chosen.GateReps} repetitions of a session ({SubsetsPerPair} random subsets each) against a baseline that is either the normal repetitions of the other sessions pooled, as `--update-baseline --sessions N` records it, or those of one other session (every ordered pair). Trials share measurements, so they are not independent; the rates are what the gate does on these sessions.");
        text.AppendLine();
        text.AppendLine("| baseline | rule | trials | false alarms (A/A) | forwarder: injected delay caught | forwarder-l7: injected delay caught |");
        text.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var a in analyses)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {(a.Pooled ? $"{result.Sessions.Count - 1} other sessions pooled" : "one other session")} | p50 {a.Policy.P50Growth:0.#%}, p99 {a.Policy.P99Growth:0.#%}, throughput {a.Policy.ThroughputGrowth:0.#%}, min {a.Policy.MinimumPoints * 100:0.#} pts, α {a.Policy.Alpha}{(a == chosen ? " (the gate's)" : string.Empty)} | {a.Trials} | {a.FalseAlarms} ({a.FalseAlarmRate:0.0%}) | {a.CaughtRate("forwarder"):0.0%} | {a.CaughtRate("forwarder-l7"):0.0%} |");
        }

        text.AppendLine();
        text.AppendLine("False alarms of the gate's rule by metric:");
        text.AppendLine();
        text.AppendLine("| metric | A/A trials failing on it |");
        text.AppendLine("|---|---:|");
        foreach (var (metric, alarms) in chosen.AlarmsByMetric)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {metric} | {alarms} |");
        }

        text.AppendLine();
        text.AppendLine("Spread of each metric's overhead, per session (lower quartile of its normal repetitions, as the gate reads it):");
        text.AppendLine();
        text.AppendLine("| metric | " + string.Join(" | ", result.Sessions.Select((_, i) => $"s{i + 1}")) + " |");
        text.AppendLine("|---|" + string.Concat(result.Sessions.Select(_ => "---:|")));
        foreach (var metric in GateMetric.All)
        {
            var medians = result.Sessions.Select(s => (GateComparison.LowerQuartile(metric.Ratios(s.Normal)) - 1).ToString("+0.0%", CultureInfo.InvariantCulture));
            text.AppendLine($"| {metric.Name} | {string.Join(" | ", medians)} |");
        }

        return text.ToString();
    }

    private static void Write(CalibrationResult result, string path)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("recordedAt", result.RecordedAt);
        json.WriteString("machine", result.Machine);
        json.WriteNumber("chunkDelayUs", result.ChunkDelayMicroseconds);
        json.WriteNumber("requestDelayUs", result.RequestDelayMicroseconds);
        GateJson.WriteSettings(json, result.Settings);
        json.WriteStartArray("sessions");
        foreach (var session in result.Sessions)
        {
            json.WriteStartObject();
            GateJson.WriteSamples(json, "normal", session.Normal);
            GateJson.WriteSamples(json, "injected", session.Injected);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static CalibrationResult Read(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        return new CalibrationResult(
            GateJson.ReadSettings(root, path),
            GateJson.Field(root, "chunkDelayUs", path).GetDouble(),
            GateJson.Field(root, "requestDelayUs", path).GetDouble(),
            [.. GateJson.Field(root, "sessions", path).EnumerateArray().Select(s => new CalibrationSession(GateJson.ReadSamples(s, "normal", path), GateJson.ReadSamples(s, "injected", path)))],
            GateJson.Field(root, "machine", path).GetString()!,
            GateJson.Field(root, "recordedAt", path).GetDateTimeOffset());
    }
}

/// <summary>One session's samples: the normal build's repetitions and the injected build's.</summary>
internal sealed record CalibrationSession(IReadOnlyList<GateSample> Normal, IReadOnlyList<GateSample> Injected);

/// <summary>A calibration's measurements.</summary>
internal sealed record CalibrationResult(GateSettings Settings, double ChunkDelayMicroseconds, double RequestDelayMicroseconds, IReadOnlyList<CalibrationSession> Sessions, string Machine, DateTimeOffset RecordedAt);

/// <summary>How one rule fared over every trial of a calibration.</summary>
/// <param name="Growth">Per proxy arm, the median p50 overhead of the normal and the injected build.</param>
internal sealed record CalibrationAnalysis(
    GatePolicy Policy,
    int GateReps,
    bool Pooled,
    int Trials,
    int FalseAlarms,
    IReadOnlyDictionary<string, int> AlarmsByMetric,
    IReadOnlyDictionary<string, int> Caught,
    IReadOnlyDictionary<string, (double Normal, double Injected)> Growth)
{
    public double FalseAlarmRate => Trials == 0 ? 0 : FalseAlarms / (double)Trials;

    public double CaughtRate(string arm) => Trials == 0 ? 0 : Caught[arm] / (double)Trials;
}
