using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Forwarder.Runtime;

/// <summary>
/// Unmaps from the process the pages of its executable's read-only segments (code, constant data,
/// unwind and type tables) once start-up is done. Start-up runs code that never runs again
/// (config parsing, composing the hosts, Kestrel's set-up) and reads tables only it needs (the
/// type data a native build unpacks once into memory of its own), and the process keeps every page
/// it touched: 14 of the 17 MB of the NativeAOT binary. The pages are unmodified copies of the
/// file (the segments are never writable: no text relocations, and relocated data lives in the
/// writable segment, left alone), so they stay in the page cache and any the running proxy needs
/// again comes back on first touch, a minor fault. A JIT-compiled process has only the small
/// `dotnet` host there.
/// </summary>
internal static class ExecutablePages
{
    private const int MadviseDontNeed = 4;
    private const uint LoadSegment = 1;
    private const uint WritableFlag = 2;

    /// <summary>Returns the bytes of address space released; 0 where the executable cannot be read as ELF.</summary>
    public static long Release()
    {
        if (!OperatingSystem.IsLinux() || new FileInfo("/proc/self/exe").LinkTarget is not { } path)
        {
            return 0;
        }

        var mappings = ReadOnlyMappings(path, out var imageBase);
        if (imageBase is not { } mapped)
        {
            return 0;
        }

        var page = Environment.SystemPageSize;
        long released = 0;
        foreach (var (segmentStart, segmentEnd) in ReadOnlySegments(path, mapped))
        {
            // Only where the kernel's map agrees the pages are read-only views of this file, and
            // inward to whole pages: a page shared with a writable segment stays.
            foreach (var (mapStart, mapEnd) in mappings)
            {
                var first = (Math.Max(segmentStart, mapStart) + page - 1) / page * page;
                var last = Math.Min(segmentEnd, mapEnd) / page * page;
                if (last > first && Madvise((nint)first, (nuint)(last - first), MadviseDontNeed) == 0)
                {
                    released += last - first;
                }
            }
        }

        return released;
    }

    /// <summary>The executable's mappings without write permission, and where its first page (file offset 0) is mapped.</summary>
    private static List<(long Start, long End)> ReadOnlyMappings(string path, out long? imageBase)
    {
        imageBase = null;
        List<(long, long)> mappings = [];
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            // address perms offset dev inode path
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || fields[5] != path)
            {
                continue;
            }

            var dash = fields[0].IndexOf('-', StringComparison.Ordinal);
            var start = long.Parse(fields[0].AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var end = long.Parse(fields[0].AsSpan(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (fields[2].All(c => c == '0'))
            {
                imageBase ??= start;
            }

            if (fields[1][1] != 'w')
            {
                mappings.Add((start, end));
            }
        }

        return mappings;
    }

    /// <summary>The address ranges of the loadable segments without write permission, from the ELF program headers.</summary>
    private static List<(long Start, long End)> ReadOnlySegments(string path, long mapped)
    {
        List<(long, long)> segments = [];
        var buffer = new byte[4096];
        int read;
        using (var stream = File.OpenRead(path))
        {
            read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }

        // 64-bit little-endian ELF only (x86-64, arm64). A position-independent executable is
        // linked at address 0 and placed where its first page is mapped; any other at its own addresses.
        var file = buffer.AsSpan(0, read);
        if (file.Length < 64 || !file[..4].SequenceEqual("\u007FELF"u8) || file[4] != 2 || file[5] != 1)
        {
            return segments;
        }

        var loadBias = BinaryPrimitives.ReadUInt16LittleEndian(file[16..]) == 3 ? mapped : 0;
        var headers = (long)BinaryPrimitives.ReadUInt64LittleEndian(file[32..]);
        var size = BinaryPrimitives.ReadUInt16LittleEndian(file[54..]);
        var count = BinaryPrimitives.ReadUInt16LittleEndian(file[56..]);
        for (var i = 0; i < count && size >= 48 && headers + ((i + 1) * size) <= file.Length; i++)
        {
            var header = file.Slice((int)headers + (i * size), size);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) == LoadSegment && (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) & WritableFlag) == 0)
            {
                var start = loadBias + (long)BinaryPrimitives.ReadUInt64LittleEndian(header[16..]);
                segments.Add((start, start + (long)BinaryPrimitives.ReadUInt64LittleEndian(header[40..])));
            }
        }

        return segments;
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow; the signature is blittable.
    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);
#pragma warning restore SYSLIB1054
}
