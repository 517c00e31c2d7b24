using System.Buffers.Text;
using Microsoft.Win32.SafeHandles;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Whether the thread it is made on waits for a CPU most of the time it wants one: the share of
/// run-queue wait in (run time + run-queue wait), from the thread's own /proc schedstat, over
/// windows in which it wanted a CPU at all. Two thresholds (hysteresis), so one noisy window does
/// not flip it. Measured (perf-reports/busy-node, 2026-12-08): a shielded busy node puts the
/// splicer at 0.15-0.40, an overloaded one at 0.6-0.8.
/// </summary>
internal sealed class ContentionMeter : IDisposable
{
    public const double EnterShare = 0.6;
    public const double LeaveShare = 0.4;

    // Below this share of a core wanted, a window says nothing about contention.
    private const double MinDemand = 0.05;

    private readonly Action<Exception>? _failed;
    private SafeFileHandle? _schedstat;
    private long _run;
    private long _wait;
    private long _at;

    /// <summary>
    /// Opens this thread's schedstat. Without one that reads (no procfs, an odd kernel), the meter
    /// stays uncontended for good and tells <paramref name="failed"/> once, on this thread.
    /// thread-self resolves at open to this thread's own task directory.
    /// </summary>
    public ContentionMeter(Action<Exception>? failed = null)
        : this("/proc/thread-self/schedstat", failed)
    {
    }

    /// <summary>Reads <paramref name="path"/> as a schedstat (tests give it other files).</summary>
    internal ContentionMeter(string path, Action<Exception>? failed)
    {
        _failed = failed;
        try
        {
            _schedstat = File.OpenHandle(path);
            if (!Read(out _run, out _wait))
            {
                throw new InvalidDataException($"{path} does not read as \"run_ns wait_ns slices\".");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            GiveUp(ex);
        }

        _at = Environment.TickCount64;
    }

    public bool Contended { get; private set; }

    /// <summary>Closes a window: reads the counters again and updates <see cref="Contended"/>; on the meter's own thread.</summary>
    public bool Sample()
    {
        long run, wait;
        try
        {
            if (_schedstat is null || !Read(out run, out wait))
            {
                return Contended;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // An exception here would end the splicer's primary thread, and with it the process.
            GiveUp(ex);
            return false;
        }

        var now = Environment.TickCount64;
        Contended = Decide(Contended, run - _run, wait - _wait, (now - _at) * 1_000_000);
        (_run, _wait, _at) = (run, wait, now);
        return Contended;
    }

    /// <summary>The state after a window of <paramref name="elapsedNs"/> in which the thread ran and waited as given.</summary>
    public static bool Decide(bool contended, long runNs, long waitNs, long elapsedNs)
    {
        var demand = runNs + waitNs;
        if (elapsedNs <= 0 || demand < MinDemand * elapsedNs)
        {
            return contended;
        }

        var share = (double)waitNs / demand;
        return contended ? share >= LeaveShare : share > EnterShare;
    }

    private bool Read(out long run, out long wait)
    {
        Span<byte> text = stackalloc byte[96];
        var length = RandomAccess.Read(_schedstat!, text, 0);
        return TryParse(text[..length], out run, out wait);
    }

    /// <summary>Parses "run_ns wait_ns slices" in place, without allocating.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out long run, out long wait)
    {
        wait = 0;
        if (!Utf8Parser.TryParse(line, out run, out var used) || used >= line.Length || line[used] != (byte)' ')
        {
            return false;
        }

        return Utf8Parser.TryParse(line[(used + 1)..], out wait, out _);
    }

    private void GiveUp(Exception reason)
    {
        _schedstat?.Dispose();
        _schedstat = null;
        Contended = false;
        _failed?.Invoke(reason);
    }

    public void Dispose() => _schedstat?.Dispose();
}
