using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Tests.Infrastructure;

/// <summary>An independent peer (nghttpd, a python3-h2 script, nghttp, h2load) run as its own process.</summary>
internal sealed class PeerProcessRunner : IAsyncDisposable
{
    private readonly Process _process;

    private PeerProcessRunner(Process process) => _process = process;

    public Process Process => _process;

    public static PeerProcessRunner Start(string file, params string[] arguments)
    {
        var process = Process.Start(new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException($"{file} did not start");
        return new PeerProcessRunner(process);
    }

    /// <summary>Runs a peer to its end: its exit code and everything it printed.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, params string[] arguments)
    {
        await using var peer = Start(file, arguments);
        var stdout = peer._process.StandardOutput.ReadToEndAsync();
        var stderr = peer._process.StandardError.ReadToEndAsync();
        await peer._process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (peer._process.ExitCode, await stdout + await stderr);
    }

    /// <summary>A port nothing listens on now (bound and released), for a peer that takes its port as an argument.</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>Waits until the port accepts a connection (a loaded machine can take long to start a peer).</summary>
    public async Task WaitForPortAsync(int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (_process.HasExited)
            {
                Assert.Fail($"the peer exited: {await _process.StandardError.ReadToEndAsync()}");
            }

            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Ends the peer; what it printed stays readable.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
    }
}
