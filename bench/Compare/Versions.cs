using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Forwarder.Bench.Compare;

/// <summary>What ran: peer versions and the machine, for the report's header.</summary>
internal static class Versions
{
    public static IReadOnlyDictionary<string, string> Of(Tools tools, string forwarderPath)
    {
        var versions = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [".NET"] = RuntimeInformation.FrameworkDescription,
        };
        if (tools.Haproxy is { } haproxy)
        {
            versions["haproxy"] = FirstLine(haproxy, "-v");
        }

        if (tools.Nginx is { } nginx)
        {
            versions["nginx"] = FirstLine(nginx, "-v");
        }

        if (forwarderPath.Length > 0)
        {
            versions["forwarder"] = forwarderPath;
        }

        return versions;
    }

    public static string Machine()
    {
        var model = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        return $"{Environment.ProcessorCount} cores{(model is null ? string.Empty : $" ({model})")}, {RuntimeInformation.OSDescription}";
    }

    private static string FirstLine(string tool, string argument)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(tool, [argument]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false });
            if (process is null)
            {
                return "unknown";
            }

            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}
