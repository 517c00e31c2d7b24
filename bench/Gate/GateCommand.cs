using System.Globalization;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>What <c>bench gate</c> was asked to do.</summary>
/// <param name="ForwarderPath">The current build; null builds the repository's Release first.</param>
/// <param name="BaseReference">The commit to compare with, built in a temporary worktree; null for <see cref="BaseCheckout.DefaultReference"/>.</param>
/// <param name="BaseForwarderPath">A built base binary, instead of building <paramref name="BaseReference"/>.</param>
/// <param name="SummaryPath">Where to write the markdown verdict (CI pages); null for none.</param>
/// <param name="HistoryPath">Append the current build's overheads here as one trend line; null for none.</param>
internal sealed record GateOptions(int Reps, GateSettings Settings, GatePolicy Policy, string? SummaryPath, string? ForwarderPath, string? BaseReference, string? BaseForwarderPath = null, string? HistoryPath = null);

/// <summary>
/// <c>bench gate</c>: builds the base, runs it and the current build side by side in one session
/// (the builds interleaved in short slices on one CPU), and fails when the current build's
/// overhead over no proxy grew beyond the policy's allowance on any metric.
/// </summary>
internal static class GateCommand
{
    public const int ExitPass = 0;
    public const int ExitRegression = 1;
    public const int ExitSetup = 2;

    public static async Task<int> RunAsync(GateOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        if (options.Reps < GateComparison.MinimumReps)
        {
            await log.WriteLineAsync($"gate: {options.Reps} repetitions are too few for a quartile; at least {GateComparison.MinimumReps} (--reps).").ConfigureAwait(false);
            return ExitSetup;
        }

        var root = ForwarderBinary.RepositoryRoot();
        BaseCheckout? checkout = null;
        try
        {
            string basePath;
            string baseCommit;
            if (options.BaseForwarderPath is { } given)
            {
                basePath = File.Exists(given) ? Path.GetFullPath(given) : throw new GateSetupException($"--base-forwarder: no file at {given}.");
                baseCommit = "given";
            }
            else
            {
                var repository = root ?? throw new GateSetupException("cannot find Forwarder.sln above the current directory: --base needs the repository.");
                var reference = options.BaseReference ?? BaseCheckout.DefaultReference(repository);
                checkout = BaseCheckout.Create(repository, reference, log);
                basePath = checkout.ForwarderPath;
                baseCommit = checkout.Commit;
            }

            var current = ForwarderBinary.Locate(options.ForwarderPath, log, rebuild: options.ForwarderPath is null);
            return await MeasureAsync(options, new GateBuild("base", basePath), new GateBuild("current", current), baseCommit, root, log, cancellationToken).ConfigureAwait(false);
        }
        catch (GateSetupException ex)
        {
            await log.WriteLineAsync($"gate: cannot compare: {ex.Message}").ConfigureAwait(false);
            await WriteSummaryAsync(options.SummaryPath, $"## Latency gate: not run\n\n{ex.Message}\n").ConfigureAwait(false);
            return ExitSetup;
        }
        finally
        {
            checkout?.Dispose();
        }
    }

    private static async Task<int> MeasureAsync(GateOptions options, GateBuild baseBuild, GateBuild currentBuild, string baseCommit, string? root, TextWriter log, CancellationToken cancellationToken)
    {
        var settings = options.Settings;
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"gate: {settings.WarmupReps} unmeasured and {options.Reps} measured repetitions of about {settings.RepTime(settings.DirectArms.Count + (2 * settings.ProxyArms.Count)).TotalSeconds:0}s: direct and both builds' {string.Join(", ", settings.ProxyArms)} interleaved ({string.Join(" and ", settings.DirectArms)} without a proxy), closed loops of {settings.Connections} and {settings.MaxConnections} connections, an open loop at {settings.OpenRate:0} req/s")).ConfigureAwait(false);
        List<GateSample> baseSamples = [];
        List<GateSample> currentSamples = [];
        try
        {
            await using var session = await GateSession.StartAsync(settings, [baseBuild, currentBuild], log).ConfigureAwait(false);
            await session.WarmAsync(cancellationToken).ConfigureAwait(false);
            for (var rep = 1; rep <= options.Reps; rep++)
            {
                var samples = await session.RunRepAsync(rep, cancellationToken).ConfigureAwait(false);
                baseSamples.AddRange(samples[baseBuild.Name]);
                currentSamples.AddRange(samples[currentBuild.Name]);
            }
        }
        catch (GateRunException ex) when (ex.Build == baseBuild.Name)
        {
            throw new GateSetupException(ex.Message);
        }
        catch (GateRunException ex)
        {
            await log.WriteLineAsync($"gate: FAIL: {ex.Message}").ConfigureAwait(false);
            await WriteSummaryAsync(options.SummaryPath, $"## Latency gate: FAIL\n\n{ex.Message}\n").ConfigureAwait(false);
            return ExitRegression;
        }

        var verdicts = GateComparison.Compare(baseSamples, currentSamples, options.Policy);
        var passed = GateReport.Passed(verdicts);
        var machine = Compare.Versions.Machine();
        await log.WriteLineAsync(GateReport.Table(verdicts)).ConfigureAwait(false);
        await WriteSummaryAsync(options.SummaryPath, GateReport.Markdown(verdicts, settings, baseCommit, baseSamples, currentSamples, options.Policy, machine)).ConfigureAwait(false);
        if (options.HistoryPath is { } history)
        {
            var commit = (root is null ? null : BaseCheckout.Resolve(root, "HEAD")) ?? "unknown";
            GateHistory.Append(history, DateTimeOffset.UtcNow, commit, baseCommit, currentSamples, machine);
            await log.WriteLineAsync($"gate: trend line appended to {history}").ConfigureAwait(false);
        }

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
