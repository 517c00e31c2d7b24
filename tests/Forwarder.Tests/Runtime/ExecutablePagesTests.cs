using System.Globalization;
using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// <see cref="ExecutablePages"/> on this test process, whose executable is the `dotnet` host: it
/// unmaps the read-only segments' pages and leaves the writable ones (relocated data, statics) as they were.
/// </summary>
public sealed class ExecutablePagesTests
{
    [Fact]
    public void Release_UnmapsOnlyTheExecutablesReadOnlyMappings()
    {
        var before = ExecutableMappings();
        var readOnlyBytes = before.Where(m => !m.Writable).Sum(m => m.Size);
        var writableResident = before.Where(m => m.Writable).Sum(m => m.ResidentKiB);

        var released = ExecutablePages.Release();

        Assert.InRange(released, 1, readOnlyBytes);
        var after = ExecutableMappings();
        Assert.True(after.Where(m => !m.Writable).Sum(m => m.ResidentKiB) <= before.Where(m => !m.Writable).Sum(m => m.ResidentKiB));
        Assert.Equal(writableResident, after.Where(m => m.Writable).Sum(m => m.ResidentKiB));
    }

    private sealed record Mapping(bool Writable, long Size, long ResidentKiB);

    /// <summary>The executable's mappings with their resident size, from /proc/self/smaps.</summary>
    private static List<Mapping> ExecutableMappings()
    {
        var path = new FileInfo("/proc/self/exe").LinkTarget!;
        List<Mapping> mappings = [];
        var inExecutable = false;
        var writable = false;
        long size = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && fields[0].Contains('-', StringComparison.Ordinal) && !fields[0].EndsWith(':'))
            {
                inExecutable = fields.Length == 6 && fields[5] == path;
                writable = fields[1][1] == 'w';
                var range = fields[0].Split('-');
                size = long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) - long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
            else if (inExecutable && fields[0] == "Rss:")
            {
                mappings.Add(new Mapping(writable, size, long.Parse(fields[1], CultureInfo.InvariantCulture)));
            }
        }

        Assert.NotEmpty(mappings);
        return mappings;
    }
}
