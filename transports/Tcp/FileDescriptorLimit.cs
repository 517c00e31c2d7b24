using System.Runtime.InteropServices;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// RLIMIT_NOFILE and the connection cap derived from it, HAProxy's maxconn from ulimit-n: each
/// proxied connection takes two descriptors (client and upstream), and the rest are left to the
/// runtime: those it holds at start, and room for what it opens later (assemblies loaded on first
/// use, the admin endpoint's connections, config and certificate reads, DNS).
/// </summary>
public static partial class FileDescriptorLimit
{
    private const int RlimitNoFile = 7;

    /// <summary>Descriptors kept for the runtime's later needs, with a sixteenth of the limit.</summary>
    private const long RuntimeReserve = 64;

    private static readonly Lazy<(ulong Soft, ulong Hard, ulong Initial)> Limits = new(RaiseSoftLimit);

    /// <summary>The soft limit at start, before it was raised.</summary>
    public static ulong InitialSoft => Limits.Value.Initial;

    public static ulong Soft => Limits.Value.Soft;

    public static ulong Hard => Limits.Value.Hard;

    /// <summary>Raises the soft limit to the hard one (as HAProxy and nginx do); idempotent, the first call does it.</summary>
    public static void Raise() => _ = Limits.Value;

    /// <summary>
    /// (soft - in use - 64 - soft/16) / 2 connections, where in use counts the descriptors open now
    /// (a JIT-compiled process holds about 370 at start, its assemblies among them): called once the
    /// process has started and before it proxies anything: 398 at 1024 with 100 in use.
    /// </summary>
    public static int DeriveMaxConnections() => Derive(Soft, InUse());

    internal static int Derive(ulong soft, int inUse)
    {
        var limit = (long)Math.Min(soft, 1UL << 30);
        return (int)Math.Max(1, (limit - inUse - RuntimeReserve - (limit / 16)) / 2);
    }

    private static int InUse()
    {
        try
        {
            return Directory.EnumerateFileSystemEntries("/proc/self/fd").Count();
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static (ulong, ulong, ulong) RaiseSoftLimit()
    {
        var limits = default(RLimit);
        if (GetRLimit(RlimitNoFile, ref limits) != 0)
        {
            // No limit to read: the cap falls back to the common default of 1024.
            return (1024, 1024, 1024);
        }

        var initial = limits.Current;
        if (limits.Current < limits.Maximum)
        {
            var raised = limits with { Current = limits.Maximum };
            if (SetRLimit(RlimitNoFile, ref raised) == 0)
            {
                limits = raised;
            }
        }

        return (limits.Current, limits.Maximum, initial);
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, ref RLimit limits);

    [LibraryImport("libc", EntryPoint = "setrlimit")]
    private static partial int SetRLimit(int resource, ref RLimit limits);

    [StructLayout(LayoutKind.Sequential)]
    private record struct RLimit(ulong Current, ulong Maximum);
}
