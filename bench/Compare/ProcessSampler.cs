using System.Globalization;

namespace Forwarder.Bench.Compare;

/// <summary>CPU time and resident memory of a process and its children, as one sample read from /proc.</summary>
internal readonly record struct ProcessUsage(double CpuSeconds, long RssBytes);

/// <summary>One sample of a run: seconds since sampling began, CPU seconds used since then, resident memory.</summary>
internal readonly record struct ResourceSample(double Seconds, double CpuSeconds, long RssBytes);

/// <summary>
/// Samples proxies' process trees (nginx and HAProxy fork workers) from /proc while a run goes
/// on: CPU seconds used over the run, and resident memory (summed over all) at its peak and on
/// average.
/// </summary>
internal sealed class ProcessSampler : IAsyncDisposable
{
    private static readonly double TicksPerSecond = 100; // USER_HZ: 100 on every Linux ABI .NET runs on.

    private readonly IReadOnlyCollection<int> _rootPids;
    private readonly CancellationTokenSource _stop = new();
    private readonly ProcessUsage _start;
    private readonly Task _sampling;
    private readonly List<long> _rss = [];
    private readonly List<ResourceSample> _samples = [];
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();

    public ProcessSampler(int rootPid, TimeSpan interval)
        : this([rootPid], interval)
    {
    }

    public ProcessSampler(IReadOnlyCollection<int> rootPids, TimeSpan interval)
    {
        _rootPids = rootPids;
        _start = Read(rootPids);
        _sampling = SampleAsync(interval);
    }

    /// <summary>Every sample so far, in time order: what the reports chart over time.</summary>
    public IReadOnlyList<ResourceSample> Samples
    {
        get
        {
            lock (_rss)
            {
                return [.. _samples];
            }
        }
    }

    /// <summary>Stops sampling and returns CPU seconds used since the start, and peak and mean RSS.</summary>
    public async Task<(double CpuSeconds, long PeakRss, long MeanRss)> StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _sampling.ConfigureAwait(false);
        var end = Read(_rootPids);
        lock (_rss)
        {
            _rss.Add(end.RssBytes);
            _samples.Add(Sample(end));
            return (end.CpuSeconds - _start.CpuSeconds, _rss.Max(), (long)_rss.Average());
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync().ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    /// <summary>Sums CPU and RSS over <paramref name="rootPid"/> and every process descended from it.</summary>
    public static ProcessUsage Read(int rootPid) => Read([rootPid]);

    /// <summary>Sums CPU and RSS over the roots and every process descended from any of them.</summary>
    public static ProcessUsage Read(IReadOnlyCollection<int> rootPids)
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && TryReadStat(pid, out var ppid, out _))
            {
                parents[pid] = ppid;
            }
        }

        double cpu = 0;
        long rss = 0;
        foreach (var pid in parents.Keys.Where(p => rootPids.Any(root => DescendsFrom(p, root, parents))))
        {
            if (TryReadStat(pid, out _, out var ticks))
            {
                cpu += ticks / TicksPerSecond;
                rss += ReadRss(pid);
            }
        }

        return new ProcessUsage(cpu, rss);
    }

    private static bool DescendsFrom(int pid, int root, Dictionary<int, int> parents)
    {
        for (var depth = 0; depth < 64; depth++)
        {
            if (pid == root)
            {
                return true;
            }

            if (!parents.TryGetValue(pid, out pid) || pid <= 1)
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>Parent pid and utime + stime (clock ticks) from /proc/PID/stat.</summary>
    private static bool TryReadStat(int pid, out int ppid, out long ticks)
    {
        ppid = 0;
        ticks = 0;
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }

        // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        ppid = int.Parse(fields[1], CultureInfo.InvariantCulture);
        ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return true;
    }

    private static long ReadRss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
            // The process ended between listing and reading.
        }

        return 0;
    }

    private ResourceSample Sample(ProcessUsage usage) =>
        new(System.Diagnostics.Stopwatch.GetElapsedTime(_started).TotalSeconds, usage.CpuSeconds - _start.CpuSeconds, usage.RssBytes);

    private async Task SampleAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                var usage = Read(_rootPids);
                lock (_rss)
                {
                    _rss.Add(usage.RssBytes);
                    _samples.Add(Sample(usage));
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }
}
