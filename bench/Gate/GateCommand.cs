using System.Globalization;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>What <c>bench gate</c> was asked to do.</summary>
/// <param name="Settings">Load settings for a new baseline; a comparison uses the baseline's own.</param>
/// <param name="SummaryPath">Where to write the markdown verdict (CI pages); null for none.</param>
/// <param name="Sessions">Sessions (fresh backend and proxies each) a new baseline pools; a comparison runs one.</param>
internal sealed record GateOptions(string BaselinePath, bool UpdateBaseline, int Reps, GateSettings Settings, GatePolicy Policy, string? SummaryPath, string? ForwarderPath, int Sessions = 1);

/// <summary><c>bench gate</c>: measure the forwarder's overheads and compare them with the committed baseline, or record a new one.</summary>
internal static class GateCommand
{
    public const int ExitPass = 0;
    public const int ExitRegression = 1;
    public const int ExitSetup = 2;

    public static async Task<int> RunAsync(GateOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        GateBaseline? baseline = null;
        var settings = options.Settings;
        try
        {
            if (!options.UpdateBaseline)
            {
                baseline = GateBaseline.Read(options.BaselinePath);
                settings = baseline.Settings;
                var usable = GateComparison.UsableReps(baseline.Samples);
                if (Math.Min(usable, options.Reps) < GateComparison.MinimumReps)
                {
                    var partial = usable < baseline.Reps ? $" ({baseline.Reps} recorded, but its sparsest metric has both arms in only {usable})" : string.Empty;
                    await log.WriteLineAsync($"gate: {usable} baseline{partial} and {options.Reps} current repetitions are too few for a quartile; both need at least {GateComparison.MinimumReps} (--reps).").ConfigureAwait(false);
                    return ExitSetup;
                }
            }
        }
        catch (GateBaselineException ex)
        {
            await log.WriteLineAsync($"gate: {ex.Message}").ConfigureAwait(false);
            return ExitSetup;
        }

        var forwarder = ForwarderBinary.Locate(options.ForwarderPath, log, rebuild: options.ForwarderPath is null);
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"gate: {settings.WarmupReps} unmeasured and {options.Reps} measured repetitions of about {settings.RepTime(3).TotalSeconds:0}s: direct, forwarder and forwarder-l7 in turn, closed loops of {settings.Connections} and {settings.MaxConnections} connections")).ConfigureAwait(false);
        List<GateSample> samples = [];
        IReadOnlyDictionary<string, string> versions = new Dictionary<string, string>();

        // A session's figures sit a few points from another's however many repetitions it has, so
        // a baseline pools several fresh sessions: the gate then compares with a typical session
        // rather than with whichever one the recording happened to draw.
        var sessions = baseline is null ? options.Sessions : 1;
        try
        {
            for (var s = 0; s < sessions; s++)
            {
                if (sessions > 1)
                {
                    await log.WriteLineAsync($"session {s + 1}/{sessions}").ConfigureAwait(false);
                }

                await using var session = await GateSession.StartAsync(settings, forwarder, null, log).ConfigureAwait(false);
                versions = session.Versions;
                await session.WarmAsync(cancellationToken).ConfigureAwait(false);
                for (var rep = 1; rep <= options.Reps; rep++)
                {
                    samples.AddRange(await session.RunRepAsync((s * options.Reps) + rep, injected: false, cancellationToken).ConfigureAwait(false));
                }
            }
        }
        catch (GateRunException ex)
        {
            await log.WriteLineAsync($"gate: FAIL: {ex.Message}").ConfigureAwait(false);
            await WriteSummaryAsync(options.SummaryPath, $"## Latency gate: FAIL\n\n{ex.Message}\n").ConfigureAwait(false);
            return ExitRegression;
        }

        if (baseline is null)
        {
            var recorded = new GateBaseline(settings, samples, Compare.Versions.Machine(), DateTimeOffset.UtcNow, versions);
            recorded.Write(options.BaselinePath);
            await log.WriteLineAsync(GateReport.Table(GateComparison.Compare(samples, samples, options.Policy))).ConfigureAwait(false);
            await log.WriteLineAsync($"gate: baseline written to {options.BaselinePath}").ConfigureAwait(false);
            return ExitPass;
        }

        var verdicts = GateComparison.Compare(baseline.Samples, samples, options.Policy);
        var passed = GateReport.Passed(verdicts);
        await log.WriteLineAsync(GateReport.Table(verdicts)).ConfigureAwait(false);
        await WriteSummaryAsync(options.SummaryPath, GateReport.Markdown(verdicts, baseline, samples, options.Policy, Compare.Versions.Machine())).ConfigureAwait(false);
        await log.WriteLineAsync(passed ? "gate: pass" : "gate: REGRESSION (see the rows marked WORSE)").ConfigureAwait(false);
        return passed ? ExitPass : ExitRegression;
    }

    private static async Task WriteSummaryAsync(string? path, string markdown)
    {
        if (path is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            await File.WriteAllTextAsync(path, markdown).ConfigureAwait(false);
        }
    }
}
