using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Udp;

/// <summary>socat as the udp peer on either side of a udp listener.</summary>
public sealed class UdpSocatTests
{
    private const string Socat = "/usr/bin/socat";

    [Fact]
    public async Task SocatBackend_EchoesThroughTheListener()
    {
        var port = FreeUdpPort();

        // UDP4-LISTEN serves the first peer it hears from: the forwarder session's upstream socket.
        using var socat = Start($"-T 60 UDP4-LISTEN:{port},bind=127.0.0.1 PIPE");
        try
        {
            // Sent to before it binds, it would take a datagram of an ended session as its peer.
            await Eventually.TrueAsync(() => IsBound(port), "socat bound its udp port");
            await using var forwarder = await RunningForwarder.StartAsync(Config($"127.0.0.1:{port}"));
            using var client = new UdpTestClient(forwarder.EndPoint("front"));

            Assert.Equal("hello", await client.AskAsync("hello"));
            Assert.Equal("again", await client.AskAsync("again"));
        }
        finally
        {
            socat.Kill();
            await socat.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task SocatClient_GetsTheBackendsReply()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var socat = Start($"-T 60 - UDP4:{forwarder.EndPoint("front")}");
        try
        {
            await socat.StandardInput.WriteAsync("ping\n");
            await socat.StandardInput.FlushAsync();
            using var deadline = new CancellationTokenSource(Eventually.DefaultTimeout);
            Assert.Equal("a:ping", await socat.StandardOutput.ReadLineAsync(deadline.Token));
        }
        finally
        {
            socat.Kill();
            await socat.WaitForExitAsync();
        }
    }

    private static string Config(string endpoint) => $$"""
        listeners:
          - { name: front, listen: '127.0.0.1:0', protocol: udp, service: back }
        services:
          back:
            endpoints: [ { address: '{{endpoint}}' } ]
        """;

    private static Process Start(string arguments)
    {
        var start = new ProcessStartInfo(Socat, arguments) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        return Process.Start(start) ?? throw new InvalidOperationException("socat did not start.");
    }

    /// <summary>Whether a udp socket is bound to the port on 127.0.0.1 (/proc/net/udp lists them as hex address:port).</summary>
    private static bool IsBound(int port)
        => File.ReadLines("/proc/net/udp").Any(line => line.Contains($" 0100007F:{port:X4} ", StringComparison.Ordinal));

    private static int FreeUdpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
