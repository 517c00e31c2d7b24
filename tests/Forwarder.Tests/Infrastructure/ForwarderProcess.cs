using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Forwarder.Tests.Infrastructure;

/// <summary>The forwarder executable run as a child process, for CLI behaviour and signals.</summary>
internal sealed partial class ForwarderProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _errors = new();

    private ForwarderProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Append(_output, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(_errors, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public string Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The forwarder's process id (the `dotnet` host running it).</summary>
    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    public static ForwarderProcess Start(params string[] arguments) => StartIn(null, arguments);

    /// <summary>Runs the executable inside network namespace <paramref name="ns"/> (in this process's own when null).</summary>
    public static ForwarderProcess StartIn(string? ns, params string[] arguments)
        => ns is null ? StartWith([], arguments) : StartWith(["ip", "netns", "exec", ns], arguments);

    /// <summary>Runs the executable with RLIMIT_NOFILE set to <paramref name="files"/> (soft and hard), as `ulimit -n` would.</summary>
    public static ForwarderProcess StartWithFileLimit(int files, params string[] arguments)
        => StartWith(["prlimit", $"--nofile={files}:{files}"], arguments);

    /// <summary>Runs the executable with <paramref name="environment"/> added to this process's environment.</summary>
    public static ForwarderProcess StartWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] arguments)
        => StartWith([], arguments, environment);

    private static ForwarderProcess StartWith(string[] prefix, string[] arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        string[] command = [.. prefix, "dotnet", Path.Combine(AppContext.BaseDirectory, "forwarder.dll"), .. arguments];
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        foreach (var word in command.Skip(1))
        {
            start.ArgumentList.Add(word);
        }

        return new ForwarderProcess(Process.Start(start)!);
    }

    /// <summary>Runs the executable to completion and returns its exit code.</summary>
    public static async Task<(int ExitCode, string Output, string Errors)> RunAsync(params string[] arguments)
    {
        using var process = Start(arguments);
        await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, process.Output, process.Errors);
    }

    /// <summary>Waits for the "Listener NAME (...) accepting on ADDRESS" log line and returns the port.</summary>
    public async Task<int> ListenerPortAsync(string listener)
    {
        var port = 0;
        await Eventually.TrueAsync(
            () =>
            {
                var match = Regex.Match(Output, $@"Listener {Regex.Escape(listener)} \(\w+\) accepting on 127\.0\.0\.1:(\d+)");
                port = match.Success ? int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
                return port != 0 || _process.HasExited;
            },
            $"listener {listener} is bound");
        Assert.False(_process.HasExited, $"the forwarder exited early: {Errors}{Output}");
        return port;
    }

    /// <summary>Waits for the "Admin endpoint on URI" log line and returns the address.</summary>
    public async Task<Uri> AdminAddressAsync()
    {
        Uri? address = null;
        await Eventually.TrueAsync(
            () =>
            {
                var match = Regex.Match(Output, @"Admin endpoint on (http://127\.0\.0\.1:\d+/)");
                address = match.Success ? new Uri(match.Groups[1].Value) : null;
                return address is not null || _process.HasExited;
            },
            "the admin endpoint is bound");
        Assert.False(_process.HasExited, $"the forwarder exited early: {Errors}{Output}");
        return address!;
    }

    /// <summary>Waits until the output holds <paramref name="text"/> (a log line), failing early if the process exits.</summary>
    public async Task WaitForOutputAsync(string text)
    {
        await Eventually.TrueAsync(() => Output.Contains(text, StringComparison.Ordinal) || _process.HasExited, $"the forwarder logs '{text}'");
        Assert.True(Output.Contains(text, StringComparison.Ordinal), $"the forwarder exited ({Errors}) before logging '{text}':\n{Output}");
    }

    /// <summary>The names of the process's threads now (Linux truncates them to 15 characters).</summary>
    public IReadOnlyList<string> ThreadNames()
        => [.. Directory.EnumerateDirectories($"/proc/{_process.Id}/task").Select(task => ReadThreadName(Path.Combine(task, "comm")))];

    private static string ReadThreadName(string path)
    {
        try
        {
            return File.ReadAllText(path).TrimEnd('\n');
        }
        catch (IOException)
        {
            return ""; // the thread ended between the listing and the read
        }
    }

    public void Signal(int signal) => Assert.Equal(0, Kill(_process.Id, signal));

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private static void Append(StringBuilder builder, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (builder)
        {
            builder.AppendLine(line);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
