using System.Diagnostics;
using System.Net;

namespace Forwarder.Tests.Dns;

/// <summary>Debian's dig (dnsutils), the independent client: runs one query and reads its answer back.</summary>
internal static class Dig
{
    public static async Task<DigResult> QueryAsync(IPEndPoint server, string name, string type, params string[] options)
    {
        var start = new ProcessStartInfo("dig") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in (string[])[$"@{server.Address}", "-p", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), name, type, "+time=10", "+tries=1", .. options])
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("dig did not start; apt-get install dnsutils");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return new DigResult(await output + await error);
    }
}

/// <summary>dig's output: the header's status and flags, and each section's records.</summary>
internal sealed class DigResult(string output)
{
    public string Output { get; } = output;

    /// <summary>NOERROR, NXDOMAIN, FORMERR...; null when dig got no answer.</summary>
    public string? Status => Field(";; ->>HEADER<<-", "status: ", ',');

    /// <summary>The header flags ("qr aa rd ra").</summary>
    public string[] Flags => Field(";; flags: ", ";; flags: ", ';')?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];

    public IReadOnlyList<DigRecord> Answer => Section("ANSWER");

    public IReadOnlyList<DigRecord> Authority => Section("AUTHORITY");

    public IReadOnlyList<DigRecord> Additional => Section("ADDITIONAL");

    /// <summary>The answer section's data of records of <paramref name="type"/>.</summary>
    public string[] Data(string type) => [.. Answer.Where(r => r.Type == type).Select(r => r.Data).Order(StringComparer.Ordinal)];

    public override string ToString() => Output;

    private string? Field(string line, string prefix, char end)
    {
        var header = Output.Split('\n').FirstOrDefault(l => l.StartsWith(line, StringComparison.Ordinal));
        if (header is null)
        {
            return null;
        }

        var start = header.IndexOf(prefix, StringComparison.Ordinal) + prefix.Length;
        var stop = header.IndexOf(end, start);
        return header[start..(stop < 0 ? header.Length : stop)];
    }

    private List<DigRecord> Section(string name)
    {
        List<DigRecord> records = [];
        var inSection = false;
        foreach (var line in Output.Split('\n'))
        {
            if (line.StartsWith(";; ", StringComparison.Ordinal))
            {
                inSection = line.StartsWith($";; {name} SECTION:", StringComparison.Ordinal);
                continue;
            }

            var fields = line.Split([' ', '\t'], 5, StringSplitOptions.RemoveEmptyEntries);
            if (inSection && fields.Length == 5 && !line.StartsWith(';'))
            {
                records.Add(new DigRecord(fields[0], int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture), fields[3], fields[4].Trim()));
            }
        }

        return records;
    }
}

internal sealed record DigRecord(string Name, int Ttl, string Type, string Data);
