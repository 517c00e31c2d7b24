using System.Diagnostics;
using System.Net.Sockets;

namespace Forwarder.Interception;

/// <summary>Runs iptables-save, iptables-restore (their ip6tables twins) and ip(8), failing with what they printed.</summary>
internal sealed class IptablesRunner
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public Task<string> SaveAsync(AddressFamily family, string table)
        => RunAsync(Tool(family, "save"), ["-t", table], null);

    /// <summary>Applies <paramref name="rules"/> in one transaction, leaving every rule it does not name alone.</summary>
    public Task RestoreAsync(AddressFamily family, string rules)
        => RunAsync(Tool(family, "restore"), ["--noflush"], rules);

    public Task IpAsync(IReadOnlyList<string> arguments) => RunAsync("ip", arguments, null);

    private static string Tool(AddressFamily family, string verb) => (family == AddressFamily.InterNetwork ? "iptables-" : "ip6tables-") + verb;

    private static async Task<string> RunAsync(string tool, IReadOnlyList<string> arguments, string? input)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardInput = input is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process? started;
        try
        {
            started = Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InterceptRulesException($"{tool} could not be started (is iptables installed?): {ex.Message}");
        }

        using var process = started ?? throw new InterceptRulesException($"{tool} could not be started");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new InterceptRulesException($"{tool} {string.Join(' ', arguments)} did not finish within {Timeout.TotalSeconds} s");
        }

        var (stdout, stderr) = (await output.ConfigureAwait(false), await error.ConfigureAwait(false));
        return process.ExitCode == 0
            ? stdout
            : throw new InterceptRulesException($"{tool} {string.Join(' ', arguments)} exited with {process.ExitCode}: {stderr.Trim()}");
    }
}

/// <summary>The rules could not be read or changed; the message says by which command and why.</summary>
internal sealed class InterceptRulesException(string message) : Exception(message);
