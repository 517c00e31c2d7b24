using System.Diagnostics;
using System.Globalization;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// One run of <c>quicgo/echo.go</c> (quic-go, from Debian's golang-github-lucas-clemente-quic-go-dev),
/// built once per test run; optionally inside a network namespace. Collects its output lines.
/// </summary>
internal sealed class QuicGoPeer : IAsyncDisposable
{
    private static readonly Lazy<Task<string>> Binary = new(() => GoPeerBuild.BuildAsync(["Quic", "quicgo"], "echo.go", "quic-go-peer", "golang-go and golang-github-lucas-clemente-quic-go-dev"));
    private readonly List<string> _output = [];
    private readonly Process _process;

    private QuicGoPeer(Process process) => _process = process;

    /// <summary>Builds the peer (once per test run).</summary>
    public static Task BuildAsync() => Binary.Value;

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
}
