using System.Globalization;
using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// <see cref="ExecutablePages"/> on this test process, whose executable is the `dotnet` host: it
/// lets go of the read-only mappings' pages and every byte reads back the same afterwards, the
/// pages the process wrote before protecting them (relocated data after RELRO; in the NativeAOT
/// binary, the stack cookie the runtime writes into its .rodata at start) included.
/// </summary>
public sealed class ExecutablePagesTests
{
    [Fact]
    public void Release_DropsTheFilesPages_AndKeepsWhatTheProcessWrote()
    {
        var mappings = ReadOnlyExecutableMappings();
        var before = mappings.Select(Contents).ToList();
        var residentBefore = mappings.Sum(m => ResidentKiB(m.Start));

        var (released, written) = ExecutablePages.Release();

        Assert.InRange(released, 1, mappings.Sum(m => m.End - m.Start));
        Assert.True(written > 0, "the dotnet host's relocated read-only data should count as written");
        Assert.True(mappings.Sum(m => ResidentKiB(m.Start)) < residentBefore, "nothing left the process");
        for (var i = 0; i < mappings.Count; i++)
        {
            Assert.True(before[i].AsSpan().SequenceEqual(Contents(mappings[i])), $"mapping at {mappings[i].Start:x} changed");
        }
    }

    private sealed record Mapping(long Start, long End);

    private static List<Mapping> ReadOnlyExecutableMappings()
    {
        var path = new FileInfo("/proc/self/exe").LinkTarget!;
        var mappings = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length == 6 && f[5] == path && f[1][1] != 'w')
            .Select(f => f[0].Split('-'))
            .Select(r => new Mapping(long.Parse(r[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture), long.Parse(r[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture)))
            .ToList();
        Assert.NotEmpty(mappings);
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
