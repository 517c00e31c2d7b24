using System.Diagnostics;
using System.Globalization;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// One run of <c>quicgo/echo.go</c> (quic-go, from Debian's golang-github-lucas-clemente-quic-go-dev),
/// built once per test run; optionally inside a network namespace. Collects its output lines.
/// </summary>
internal sealed class QuicGoPeer : IAsyncDisposable
{
    private static readonly Lazy<Task<string>> Binary = new(BuildAsync);
    private readonly List<string> _output = [];
    private readonly Process _process;

    private QuicGoPeer(Process process) => _process = process;

    /// <summary>Starts the peer with <paramref name="arguments"/>, under <c>ip netns exec</c> when <paramref name="netns"/> is given.</summary>
    public static async Task<QuicGoPeer> StartAsync(string? netns, params string[] arguments)
    {
        var binary = await Binary.Value;
        var start = netns is null
            ? new ProcessStartInfo(binary, arguments)
            : new ProcessStartInfo("ip", ["netns", "exec", netns, binary, .. arguments]);
        start.RedirectStandardOutput = true;
        // quic-go logs only warnings there (such as a UDP buffer it could not enlarge).
        start.RedirectStandardError = true;
        var peer = new QuicGoPeer(new Process { StartInfo = start });
        peer._process.OutputDataReceived += (_, line) => peer.Collect(line.Data);
        peer._process.ErrorDataReceived += (_, line) => peer.Collect(line.Data is null ? null : "stderr: " + line.Data);
        peer._process.Start();
        peer._process.BeginOutputReadLine();
        peer._process.BeginErrorReadLine();
        return peer;
    }

    public List<string> Lines()
    {
        lock (_output)
        {
            return [.. _output];
        }
    }

    public string Output => string.Join('\n', Lines());

    /// <summary>Waits until a peer started as a server prints its UDP port; returns it.</summary>
    public async Task<int> ListeningPortAsync(TimeSpan timeout)
    {
        await WaitForAsync(lines => lines.Any(line => line.StartsWith("listening ", StringComparison.Ordinal)), "quic-go listens", timeout);
        return int.Parse(Lines().First(line => line.StartsWith("listening ", StringComparison.Ordinal))["listening ".Length..], CultureInfo.InvariantCulture);
    }

    public async Task WaitForAsync(Func<List<string>, bool> condition, string because, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(Lines()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {because}; quic-go said: {Output}");
            Assert.False(_process.HasExited && !condition(Lines()), $"quic-go exited before {because}; it said: {Output}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private void Collect(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Add(line);
        }
    }

    private static async Task<string> BuildAsync()
    {
        var source = Path.Combine(RepositoryRoot(), "tests", "Forwarder.Transports.Tests", "Quic", "quicgo");
        var output = Path.Combine(Path.GetTempPath(), $"forwarder-quic-go-peer-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        var binary = Path.Combine(output, "quic-go-echo");
        var build = new ProcessStartInfo("go", ["build", "-o", binary, "echo.go"])
        {
            WorkingDirectory = source,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        build.Environment["GO111MODULE"] = "off";
        build.Environment["GOPATH"] = "/usr/share/gocode";
        build.Environment["GOCACHE"] = Path.Combine(output, "cache");
        build.Environment["GOFLAGS"] = string.Empty;
        using var go = Process.Start(build)!;
        var stdout = go.StandardOutput.ReadToEndAsync();
        var stderr = go.StandardError.ReadToEndAsync();
        await go.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(go.ExitCode == 0, $"go build failed in {source} (needs golang-go and golang-github-lucas-clemente-quic-go-dev): {await stdout}{await stderr}");
        return binary;
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Forwarder.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (Forwarder.sln) was not found above the test binaries.");
    }
}
