namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Whether a cgroup caps this process's CPU time. Under a quota (say 1.5 CPUs, which
/// Environment.ProcessorCount rounds up to 2), throttling shows as run-queue wait, so the
/// spillover would read "contended" and add a second thread inside the same quota: no spare then.
/// </summary>
internal static class CpuQuota
{
    /// <summary>True if cgroup v2's cpu.max, on this process's cgroup or an ancestor, or v1's cpu.cfs_quota_us sets a quota.</summary>
    public static bool IsSet()
    {
        foreach (var path in Candidates())
        {
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (path.EndsWith("cpu.max", StringComparison.Ordinal) ? Limits(text) : LimitsV1(text))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>cgroup v2 cpu.max, "$MAX $PERIOD": a quota unless $MAX is "max" (or the text is not one).</summary>
    public static bool Limits(string cpuMax)
    {
        var quota = cpuMax.AsSpan().Trim();
        var space = quota.IndexOf(' ');
        if (space >= 0)
        {
            quota = quota[..space];
        }

        return long.TryParse(quota, out var max) && max > 0;
    }

    /// <summary>cgroup v1 cpu.cfs_quota_us: a quota unless -1.</summary>
    public static bool LimitsV1(string quotaUs) => long.TryParse(quotaUs.AsSpan().Trim(), out var quota) && quota > 0;

    private static IEnumerable<string> Candidates()
    {
        yield return "/sys/fs/cgroup/cpu/cpu.cfs_quota_us";
        yield return "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us";

        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/cgroup");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            lines = [];
        }

        foreach (var path in CpuMaxPaths(lines))
        {
            yield return path;
        }
    }

    /// <summary>cgroup v2: "0::/path" in /proc/self/cgroup names this process's cgroup; a quota on it or any ancestor caps it.</summary>
    public static IEnumerable<string> CpuMaxPaths(string[] procSelfCgroup)
    {
        var own = Array.Find(procSelfCgroup, l => l.StartsWith("0::", StringComparison.Ordinal))?[3..] ?? "/";
        for (var dir = own.TrimEnd('/'); ; dir = dir[..dir.LastIndexOf('/')])
        {
            yield return $"/sys/fs/cgroup{dir}/cpu.max";
            if (dir.Length == 0)
            {
                break;
            }
        }
    }
}
