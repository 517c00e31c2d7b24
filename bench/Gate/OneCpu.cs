using System.Diagnostics;
using System.Globalization;

namespace Forwarder.Bench.Gate;

/// <summary>
/// Runs the gate with every process on one CPU: the bench re-runs itself under taskset, and the
/// backend and proxies it starts inherit the mask. Across cores each hop is a wake-up whose cost
/// swings with the idle state of a shared machine's other core (±20% between runs here); on one
/// core it is a context switch, and the proxy's own work per request is what moves the figures.
/// </summary>
internal static class OneCpu
{
    private const string Marker = "FORWARDER_BENCH_ONE_CPU";

    /// <summary>The exit code of the pinned re-run, or null when this process should go on itself (already pinned, one CPU only, or no taskset).</summary>
    public static async Task<int?> RerunPinnedAsync(TextWriter log, CancellationToken cancellationToken)
    {
        if (Environment.ProcessorCount == 1 || Environment.GetEnvironmentVariable(Marker) is not null || !OperatingSystem.IsLinux())
        {
            return null;
        }

        var taskset = new[] { "/usr/bin/taskset", "/bin/taskset" }.FirstOrDefault(File.Exists);
        if (taskset is null || Environment.ProcessPath is not { } host)
        {
            await log.WriteLineAsync("gate: taskset (util-linux) not found; measuring across CPUs, which is noisier").ConfigureAwait(false);
            return null;
        }

        var start = new ProcessStartInfo(taskset) { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(LastAllowedCpu().ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(host);
        var arguments = Environment.GetCommandLineArgs();

        // Under the dotnet host the first argument is the bench's dll; an apphost is its own program.
        foreach (var argument in Path.GetFileNameWithoutExtension(host) == "dotnet" ? arguments : arguments[1..])
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment[Marker] = "1";
        using var child = Process.Start(start) ?? throw new InvalidOperationException("Could not start taskset.");
        await child.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return child.ExitCode;
    }

    /// <summary>The highest CPU this process may run on (Cpus_allowed_list, e.g. 0-1 or 0,2-3).</summary>
    private static int LastAllowedCpu()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        var last = line?.Split(':')[1].Trim().Split(',')[^1].Split('-')[^1];
        return int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var cpu) ? cpu : 0;
    }
}
