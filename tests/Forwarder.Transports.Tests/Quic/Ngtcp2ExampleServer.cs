using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// Debian's ngtcp2 example server (package ngtcp2-server, /usr/sbin/gtlsserver: ngtcp2 + GnuTLS + nghttp3),
/// serving a directory over HTTP/3 on a free loopback UDP port.
/// </summary>
internal sealed class Ngtcp2ExampleServer : IAsyncDisposable
{
    private const string Binary = "/usr/sbin/gtlsserver";
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private Ngtcp2ExampleServer(Process process, IPEndPoint endPoint)
    {
        _process = process;
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }

    public string Output { get { lock (_output) { return _output.ToString(); } } }

    public static async Task<Ngtcp2ExampleServer> StartAsync(QuicTestPki pki, string htdocs, params string[] options)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: apt-get install ngtcp2-server");
        var port = FreeUdpPort();
        var start = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var option in (string[])["--quiet", $"--htdocs={htdocs}", .. options, "127.0.0.1",
                     port.ToString(CultureInfo.InvariantCulture), pki.ServerKeyFile, pki.ServerCertificateFile])
        {
            start.ArgumentList.Add(option);
        }

        var server = new Ngtcp2ExampleServer(Process.Start(start)!, new IPEndPoint(IPAddress.Loopback, port));
        server._process.OutputDataReceived += (_, e) => server.Append(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        await server.WaitUntilBoundAsync(port);
        return server;
    }

    private void Append(string? line)
    {
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>Waits for the UDP socket to show in /proc/net/udp (there is no connect to probe UDP with).</summary>
    private async Task WaitUntilBoundAsync(int port)
    {
        var needle = $"0100007F:{port:X4}";
        var deadline = Stopwatch.StartNew();
        while (!File.ReadAllText("/proc/net/udp").Contains(needle, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                Assert.Fail($"gtlsserver exited ({_process.ExitCode}): {Output}");
            }

            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), $"gtlsserver did not bind UDP {port}: {Output}");
            await Task.Delay(20);
        }
    }

    private static int FreeUdpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
