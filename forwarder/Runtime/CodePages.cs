using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Forwarder.Runtime;

/// <summary>
/// Lets go of the pages of the executable's and the shared libraries' read-only mappings that
/// start-up alone touched (code that never runs again, the dehydrated type data NativeAOT unpacks
/// once, the tables start-up walked): 10-15 MiB of the NativeAOT binary, and 4-5 MiB of
/// libcrypto, libc and libm, which their loading and OpenSSL's initialisation leave mapped whole
/// (the page cache maps a file's pages in large folios). Only pages that are still the file's own are
/// released (page cache pages, per /proc/self/pagemap): they stay in the page cache and come back
/// unchanged on the next touch, a minor fault. A page the process wrote is a private copy (a
/// read-only mapping can have been writable earlier, as relocated data is until RELRO protects it);
/// dropping it would bring back the file's bytes in its place, so it is kept.
/// </summary>
internal static class CodePages
{
    private const int MadviseDontNeed = 4;
    private const ulong Present = 1UL << 63;
    private const ulong FilePage = 1UL << 61;

    /// <summary>Bytes released, and bytes kept because the process had written them.</summary>
    public static (long Released, long Written) Release()
    {
        if (!OperatingSystem.IsLinux() || new FileInfo("/proc/self/exe").LinkTarget is not { } executable)
        {
            return (0, 0);
        }

        var page = Environment.SystemPageSize;
        long released = 0, written = 0;
        using var pagemap = File.OpenHandle("/proc/self/pagemap");
        foreach (var (start, end) in ReadOnlyMappings(executable))
        {
            var entries = PageEntries(pagemap, start, end, page);
            var run = -1;
            for (var i = 0; i <= entries.Length; i++)
            {
                var entry = i < entries.Length ? entries[i] : 0;
                var filePage = (entry & (Present | FilePage)) == (Present | FilePage);
                written += (entry & (Present | FilePage)) == Present ? page : 0;
                if (filePage && run < 0)
                {
                    run = i;
                }
                else if (!filePage && run >= 0)
                {
                    if (Madvise((nint)(start + ((long)run * page)), (nuint)((long)(i - run) * page), MadviseDontNeed) == 0)
                    {
                        released += (long)(i - run) * page;
                    }

                    run = -1;
                }
            }
        }

        return (released, written);
    }

    /// <summary>
    /// The private, readable mappings without write permission of the executable and of the shared objects
    /// the loader mapped, from /proc/self/maps. Other mapped files are left alone: a file someone
    /// truncates while it is mapped faults (SIGBUS) on its next read, and an executable or a
    /// library is replaced by a new file, never rewritten in place.
    /// </summary>
    private static List<(long Start, long End)> ReadOnlyMappings(string executable)
    {
        List<(long, long)> mappings = [];
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            // address perms offset dev inode path
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || fields[1][..2] != "r-" || fields[1][3] != 'p' || !IsCode(fields[5], executable))
            {
                continue;
            }

            var dash = fields[0].IndexOf('-', StringComparison.Ordinal);
            mappings.Add((
                long.Parse(fields[0].AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                long.Parse(fields[0].AsSpan(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        }

        return mappings;
    }

    /// <summary>The executable, or a shared object (libcrypto.so.3, ld-linux-x86-64.so.2).</summary>
    private static bool IsCode(string path, string executable) =>
        path == executable || (path.StartsWith('/') && Path.GetFileName(path).Contains(".so", StringComparison.Ordinal));

    /// <summary>One 64-bit /proc/self/pagemap entry per page of [start, end).</summary>
    private static ulong[] PageEntries(SafeFileHandle pagemap, long start, long end, int page)
    {
        var bytes = new byte[(end - start) / page * sizeof(ulong)];
        var read = RandomAccess.Read(pagemap, bytes, start / page * sizeof(ulong));
        var entries = new ulong[read / sizeof(ulong)];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * sizeof(ulong)));
        }

        return entries;
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow; the signature is blittable.
    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);
#pragma warning restore SYSLIB1054
}
