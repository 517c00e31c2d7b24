using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Cli;

/// <summary><c>bench gate</c>: the CI latency-regression gate (the current build against its base, side by side) and its calibration.</summary>
internal static class GateCli
{
    public static Command Create()
    {
        var root = ForwarderBinary.RepositoryRoot() ?? ".";
        var baseReference = new Option<string?>("--base") { Description = "Commit to compare with, built in a temporary git worktree. Default: the merge-base with origin/main when this branch has commits of its own, else HEAD~1." };
        var baseForwarder = new Option<string?>("--base-forwarder") { Description = "A built base forwarder binary, instead of building --base." };
        var history = new Option<string?>("--history") { Description = "Append the current build's overheads to this trend record (TSV, one line per run)." };
        var calibrate = new Option<bool>("--calibrate") { Description = "Measure the gate's false-alarm (A/A) and detection (DelayInjection build) rates over several sessions and write perf-reports/gate-calibration." };
        var reps = new Option<int>("--reps") { Description = "Measured repetitions (per session when calibrating).", DefaultValueFactory = _ => GateDefaults.Reps };
        var summary = new Option<string?>("--summary") { Description = "Write the verdict as markdown here (for CI pages)." };
        var forwarder = new Option<string?>("--forwarder") { Description = "Current forwarder binary; default the repository's Release build, rebuilt first." };
        var backend = new Option<string>("--backend") { Description = "HTTP backend: nginx (the default when installed) or builtin." };
        backend.AcceptOnlyFromAmong("nginx", "builtin");
        var defaults = GateSettings.Default("nginx");
        var connections = new Option<int>("--connections", "-c") { Description = "Connections of the latency runs.", DefaultValueFactory = _ => defaults.Connections };
        var duration = BenchCli.DurationOption("--duration", "-d", "Measured latency time per arm and repetition.", defaults.Duration);
        var slices = new Option<int>("--slices") { Description = "Slices the latency time is cut into, the arms taking turns.", DefaultValueFactory = _ => defaults.Slices };
        var maxConnections = new Option<int>("--max-connections") { Description = "Connections of the throughput runs.", DefaultValueFactory = _ => defaults.MaxConnections };
        var maxDuration = BenchCli.DurationOption("--max-duration", null, "Measured time of each throughput run.", defaults.MaxDuration);
        var warmup = BenchCli.DurationOption("--warmup", null, "Unmeasured load before each throughput run.", defaults.Warmup);
        var warmupReps = new Option<int>("--warmup-reps") { Description = "Unmeasured repetitions before the first measured one.", DefaultValueFactory = _ => defaults.WarmupReps };
        var openRate = new Option<double>("--open-rate") { Description = "Requests a second of the open-loop run (its p99 is what shows pauses).", DefaultValueFactory = _ => defaults.OpenRate };
        var openDuration = BenchCli.DurationOption("--open-duration", null, "Measured time of each open-loop run.", defaults.OpenDuration);
        var p50 = ShareOption("--p50-growth", "Regression: p50 overhead grown by more than this share of the base's.", GatePolicy.Default.P50Growth);
        var p99 = ShareOption("--p99-growth", "Regression: p99 overhead grown by more than this share.", GatePolicy.Default.P99Growth);
        var throughput = ShareOption("--throughput-growth", "Regression: throughput cost grown by more than this share.", GatePolicy.Default.ThroughputGrowth);
        var openP99 = ShareOption("--open-p99-growth", "Regression: open-loop p99 overhead grown by more than this share.", GatePolicy.Default.OpenP99Growth);
        var minimum = ShareOption("--min-growth", "Growth never allowed below this share of the direct arm's figure.", GatePolicy.Default.MinimumPoints);
        var openMinimum = ShareOption("--open-p99-min-growth", "Open-loop p99 growth never allowed below this share of the direct arm's figure.", GatePolicy.Default.OpenP99MinimumPoints);
        var memory = ShareOption("--memory-growth", "Regression: the proxies' resident memory after load grown by more than this share of the base's.", GatePolicy.Default.RssGrowth);
        var memoryMinimum = new Option<double>("--memory-min-growth") { Description = "Memory growth (MiB) never counted below this. Given, it holds for every arm.", DefaultValueFactory = _ => GatePolicy.Default.RssMinimumMiB };
        var alpha = ShareOption("--alpha", "Significance of the one-sided bootstrap of the lower-quartile shift.", GatePolicy.Default.Alpha);
        var sessions = new Option<int>("--sessions") { Description = "Calibration: independent sessions (fresh backend and proxies each).", DefaultValueFactory = _ => 4 };
        var gateReps = new Option<int>("--gate-reps") { Description = "Calibration: repetitions of the gate run each trial stands for.", DefaultValueFactory = _ => GateDefaults.Reps };
        var delays = new Option<string?>("--inject") { Description = "Calibration: busy waits to inject, as CHUNK_US,REQUEST_US (tcp listener per chunk, http listener per request); default sized from a pilot." };
        var arms = new Option<string?>("--arms") { Description = $"Comma-separated proxy arms to run, some of: {string.Join(", ", GateMetric.ProxyArms)}. Default: all; when calibrating, {string.Join(" and ", GateCalibration.Arms)}." };
        var from = new Option<string?>("--from") { Description = "Calibration: re-analyse these samples.json files (comma-separated, same settings, delays and machine: their sessions pooled) instead of measuring; their own arms, so not with --arms." };
        var output = new Option<string?>("--out") { Description = "Calibration report directory; default perf-reports/gate-calibration." };
        BenchCli.AtLeast(reps, 2);
        BenchCli.AtLeast(warmupReps, 0);
        BenchCli.AtLeast(slices, 1);
        BenchCli.AtLeast(connections, 1);
        BenchCli.AtLeast(maxConnections, 1);
        BenchCli.AtLeast(sessions, 1);
        BenchCli.AtLeast(gateReps, 2);
        memoryMinimum.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() < 0)
            {
                result.AddError("--memory-min-growth: must be 0 or more.");
            }
        });
        openRate.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() <= 0)
            {
                result.AddError("--open-rate: must be above 0.");
            }
        });
        var command = new Command("gate", "Latency-regression gate: build the base commit, run it beside the current build and compare the forwarder's overheads over no proxy. Exit 0 pass, 1 regression, 2 no base to compare with.")
        {
            baseReference, baseForwarder, history, calibrate, arms, reps, summary, forwarder, backend, connections, duration, slices, maxConnections, maxDuration, warmup, warmupReps, openRate, openDuration, p50, p99, throughput, openP99, minimum, openMinimum, memory, memoryMinimum, alpha, sessions, gateReps, delays, from, output,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(arms) is { } list && (ParseArms(list) is not [_, ..] || ParseArms(list).FirstOrDefault(a => !GateMetric.ProxyArms.Contains(a)) is not null))
            {
                result.AddError($"--arms: expected some of {string.Join(", ", GateMetric.ProxyArms)}, got '{list}'.");
            }

            if (result.GetValue(arms) is { } named && ParseArms(named).GroupBy(arm => arm, StringComparer.Ordinal).FirstOrDefault(arm => arm.Count() > 1) is { } twice)
            {
                result.AddError($"--arms: {twice.Key} is named twice in '{named}'.");
            }

            if (result.GetValue(arms) is not null && result.GetValue(from) is not null)
            {
                result.AddError("--arms: not with --from; a re-analysis judges the arms its samples measured.");
            }

            if (result.GetValue(delays) is { } text && ParseDelays(text) is null)
            {
                result.AddError($"--inject: expected CHUNK_US,REQUEST_US (two numbers of microseconds, 0 or more), got '{text}'.");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (parse.GetValue(from) is null && await OneCpu.RerunPinnedAsync(Console.Out, cancellationToken).ConfigureAwait(false) is { } exitCode)
            {
                return exitCode;
            }

            var settings = new GateSettings(
                parse.GetValue(connections),
                parse.GetValue(duration),
                parse.GetValue(slices),
                parse.GetValue(maxConnections),
                parse.GetValue(maxDuration),
                parse.GetValue(warmup),
                parse.GetValue(warmupReps),
                parse.GetValue(backend) ?? (Tools.Find().Nginx is null ? "builtin" : "nginx"),
                parse.GetValue(openRate),
                parse.GetValue(openDuration),
                parse.GetValue(arms) is { } armList ? ParseArms(armList) : null);
            var policy = PolicyOf(parse);
            SocketEngineSettings.Apply(1);
            if (!parse.GetValue(calibrate))
            {
                var options = new GateOptions(parse.GetValue(reps), settings, policy, parse.GetValue(summary), parse.GetValue(forwarder), parse.GetValue(baseReference), parse.GetValue(baseForwarder), parse.GetValue(history));
                return await GateCommand.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
            }

            var calibration = new CalibrationOptions(settings, parse.GetValue(sessions), parse.GetValue(reps), parse.GetValue(gateReps), policy, 0.10, ParseDelays(parse.GetValue(delays)),
                parse.GetValue(output) ?? Path.Combine(root, "perf-reports", "gate-calibration"), parse.GetValue(forwarder), parse.GetValue(from));
            var result = await GateCalibration.RunAsync(calibration, Console.Out, cancellationToken).ConfigureAwait(false);
            var analyses = Rules(policy).Select(rule => GateCalibration.Analyse(result, rule, calibration.GateReps)).ToArray();
            var report = GateCalibration.Report(result, analyses);
            Directory.CreateDirectory(calibration.OutputDirectory);
            await File.WriteAllTextAsync(Path.Combine(calibration.OutputDirectory, "report.md"), report, cancellationToken).ConfigureAwait(false);
            await Console.Out.WriteLineAsync(report).ConfigureAwait(false);
            return BenchCli.ExitOk;
        });
        return command;
    }

    /// <summary>The command line's allowances, each with the <see cref="GatePolicy"/> field it sets.</summary>
    private static readonly (string Option, Func<GatePolicy, double, GatePolicy> Set)[] Allowances =
    [
        ("--p50-growth", (p, v) => p with { P50Growth = v }),
        ("--p99-growth", (p, v) => p with { P99Growth = v }),
        ("--throughput-growth", (p, v) => p with { ThroughputGrowth = v }),
        ("--open-p99-growth", (p, v) => p with { OpenP99Growth = v }),
        ("--min-growth", (p, v) => p with { MinimumPoints = v }),
        ("--open-p99-min-growth", (p, v) => p with { OpenP99MinimumPoints = v }),
        ("--memory-growth", (p, v) => p with { RssGrowth = v }),
        ("--memory-min-growth", (p, v) => p with { RssMinimumMiB = v }),
        ("--alpha", (p, v) => p with { Alpha = v }),
    ];

    /// <summary>
    /// The calibrated policy with the allowances given on the command line set for every arm (a
    /// calibration's what-if); those not given keep each arm's own calibrated value.
    /// </summary>
    internal static GatePolicy PolicyOf(ParseResult parse) => Allowances.Aggregate(
        GatePolicy.Default,
        (policy, allowance) => parse.GetResult(allowance.Option) is OptionResult { Implicit: false } given
            ? policy.ForEveryArm(p => allowance.Set(p, given.GetValueOrDefault<double>()))
            : policy);

    /// <summary>The rule asked for first, then neighbours for the report's comparison, each variation made to every arm's allowances.</summary>
    internal static IEnumerable<GatePolicy> Rules(GatePolicy chosen)
    {
        yield return chosen;
        foreach (var growth in new[] { 0.025, 0.05, 0.075 })
        {
            if (growth != chosen.P50Growth)
            {
                yield return chosen.ForEveryArm(p => p with { P50Growth = growth });
            }
        }

        yield return chosen.ForEveryArm(p => p with { ThroughputGrowth = 0.2 });
        yield return chosen.ForEveryArm(p => p with { OpenP99MinimumPoints = 0.25 });
        yield return chosen.ForEveryArm(p => p with { OpenP99MinimumPoints = 1.0 });

        yield return chosen.ForEveryArm(p => p with { Alpha = p.Alpha * 5 });
    }

    private static string[] ParseArms(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static (double Chunk, double Request)? ParseDelays(string? text)
    {
        var parts = text?.Split(',', StringSplitOptions.TrimEntries);
        return parts is [var chunk, var request]
            && double.TryParse(chunk, NumberStyles.Float, CultureInfo.InvariantCulture, out var c) && c >= 0
            && double.TryParse(request, NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && r >= 0
            ? (c, r) : null;
    }

    private static Option<double> ShareOption(string name, string description, double fallback)
        => new(name)
        {
            Description = description + " E.g. 5% or 0.05. Given, it holds for every arm; not given, each arm keeps its calibrated value.",
            DefaultValueFactory = _ => fallback,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
                if (ValueParsers.TryParseShare(text, out var share))
                {
                    return share;
                }

                result.AddError($"{name}: expected a share such as 5% or 0.05, got '{text}'.");
                return fallback;
            },
        };
}
