using System.Globalization;
using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// <see cref="CodePages"/> on this test process, whose executable is the `dotnet` host and whose
/// libraries are the runtime's (libcoreclr, libclrjit, libc): it lets go of the read-only
/// mappings' pages, the libraries' too, and every byte reads back the same afterwards, the pages
/// the process wrote before protecting them (relocated data after RELRO; in the NativeAOT binary,
/// the stack cookie the runtime writes into its .rodata at start) included.
/// </summary>
public sealed class CodePagesTests
{
    [Fact]
    public void Release_DropsTheFilesPages_AndKeepsWhatTheProcessWrote()
    {
        var mappings = ReadOnlyCodeMappings();
        var before = mappings.Select(Contents).ToList();
        var residentBefore = mappings.Select(m => ResidentKiB(m.Start)).ToList();

        var (released, written) = CodePages.Release();

        Assert.InRange(released, 1, mappings.Sum(m => m.End - m.Start));
        Assert.True(written > 0, "the dotnet host's relocated read-only data should count as written");
        var residentAfter = mappings.Select(m => ResidentKiB(m.Start)).ToList();
        Assert.True(residentAfter.Sum() < residentBefore.Sum(), "nothing left the process");
        Assert.True(
            mappings.Where((m, i) => m.Library && residentAfter[i] < residentBefore[i]).Any(),
            "no shared library's pages left the process");
        for (var i = 0; i < mappings.Count; i++)
        {
            Assert.True(before[i].AsSpan().SequenceEqual(Contents(mappings[i])), $"mapping at {mappings[i].Start:x} changed");
        }
    }

    private sealed record Mapping(long Start, long End, bool Library);

    /// <summary>Readable, private, not writable mappings of the executable and of shared objects (*.so*).</summary>
    private static List<Mapping> ReadOnlyCodeMappings()
    {
        var path = new FileInfo("/proc/self/exe").LinkTarget!;
        var mappings = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length == 6 && f[1].StartsWith("r-", StringComparison.Ordinal) && f[1][3] == 'p')
            .Where(f => f[5] == path || (f[5].StartsWith('/') && Path.GetFileName(f[5]).Contains(".so", StringComparison.Ordinal)))
            .Select(f => (Range: f[0].Split('-'), Library: f[5] != path))
            .Select(m => new Mapping(
                long.Parse(m.Range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                long.Parse(m.Range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                m.Library))
            .ToList();
        Assert.Contains(mappings, m => !m.Library);
        Assert.Contains(mappings, m => m.Library);
        return mappings;
    }

    private static byte[] Contents(Mapping mapping)
    {
        using var memory = File.OpenHandle("/proc/self/mem");
        var bytes = new byte[mapping.End - mapping.Start];
        Assert.Equal(bytes.Length, RandomAccess.Read(memory, bytes, mapping.Start));
        return bytes;
    }

    private static long ResidentKiB(long start)
    {
        var header = start.ToString("x", CultureInfo.InvariantCulture) + "-";
        var inMapping = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            if (line.StartsWith(header, StringComparison.Ordinal))
            {
                inMapping = true;
            }
            else if (inMapping && line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(4).Trim().TrimEnd(" kB"), CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
