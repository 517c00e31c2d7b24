using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// Hole-punching probes leave the listener's port with a hop limit of their own while a connection
/// on the same socket sends: iptables counts what leaves with TTL 2, per destination port. Needs root.
/// </summary>
public sealed class QuicListenerHopLimitTests : IDisposable
{
    private const string NodeName = "node-b.mesh.test";
    private const string Alpn = "forwarder-test";
    private const int HopLimit = 2;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);
    private readonly string _tag = $"fwttl{Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))}";
    private readonly List<string[]> _rules = [];

    [Fact]
    public async Task Send_WithHopLimit_LimitsTheProbesAlone_NotTheConnectionsPackets()
    {
        await using var listener = Listen();
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions
        {
            Alpn = Alpn, ServerName = NodeName, CaFile = _pki.CaFile,
        }, cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);
        using var target = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        target.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var probeTarget = (IPEndPoint)target.LocalEndPoint!;
        var port = listener.LocalEndPoint.Port;
        var connectionRule = CountTtl2(port, client.LocalEndPoint!.Port, "connection");
        var probeRule = CountTtl2(port, probeTarget.Port, "probes");

        // The server sends 16 MB to the client while probes go out from the same socket as fast as they can.
        var payload = RandomNumberGenerator.GetBytes(16 * 1024 * 1024);
        var sending = Task.Run(async () =>
        {
            var stream = await server.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(payload, cts.Token);
            stream.CompleteWrites();
        }, cts.Token);
        var probes = 0;
        var probing = Task.Run(() =>
        {
            while (!sending.IsCompleted)
            {
                listener.Send("probe"u8, probeTarget, HopLimit);
                probes++;
            }
        }, cts.Token);
        var received = await ReadToEndAsync(await client.AcceptStreamAsync(cts.Token), cts.Token);
        await Task.WhenAll(sending, probing);

        Assert.Equal(payload.Length, received);
        Assert.True(probes > 100, $"only {probes} probes went out during the transfer");
        Assert.Equal(probes, Counted(probeRule));
        Assert.Equal(0, Counted(connectionRule));
    }

    [Fact]
    public async Task Send_WithoutHopLimit_UsesTheSocketsTtl()
    {
        await using var listener = Listen();
        using var target = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        target.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var probeTarget = (IPEndPoint)target.LocalEndPoint!;
        var rule = CountTtl2(listener.LocalEndPoint.Port, probeTarget.Port, "plain");

        listener.Send("token"u8, probeTarget);
        listener.Send("probe"u8, probeTarget, HopLimit);

        var buffer = new byte[16];
        target.ReceiveTimeout = (int)Deadline.TotalMilliseconds;
        Assert.Equal("token", System.Text.Encoding.ASCII.GetString(buffer, 0, target.Receive(buffer)));
        Assert.Equal("probe", System.Text.Encoding.ASCII.GetString(buffer, 0, target.Receive(buffer)));
        Assert.Equal(1, Counted(rule));
    }

    [Fact]
    public async Task Send_ToAnIPv6Address_FromAnIPv4Socket_ThrowsASocketException()
    {
        await using var listener = Listen();

        var error = Assert.Throws<SocketException>(() => listener.Send("probe"u8, new IPEndPoint(IPAddress.IPv6Loopback, 9), HopLimit));

        Assert.Equal(SocketError.AddressFamilyNotSupported, error.SocketErrorCode);
    }

    [Fact]
    public async Task Send_AfterDispose_ThrowsObjectDisposed()
    {
        var listener = Listen();
        await listener.DisposeAsync();

        Assert.Throws<ObjectDisposedException>(() => listener.Send("probe"u8, new IPEndPoint(IPAddress.Loopback, 9), HopLimit));
    }

    private QuicListener Listen() => QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new QuicServerOptions
    {
        Alpn = Alpn, CertificateFile = _pki.ServerCertificateFile, KeyFile = _pki.ServerKeyFile,
    });

    public void Dispose()
    {
        foreach (var rule in _rules)
        {
            Run(["iptables", "-w", "-D", .. rule], check: false);
        }

        _pki.Dispose();
    }

    /// <summary>A counting rule (no target: it changes nothing) for UDP from <paramref name="from"/> to <paramref name="to"/> on loopback that leaves with TTL 2.</summary>
    private string CountTtl2(int from, int to, string name)
    {
        var comment = $"{_tag}-{name}";
        string[] rule = ["OUTPUT", "-o", "lo", "-p", "udp", "--sport", $"{from}", "--dport", $"{to}", "-m", "ttl", "--ttl-eq", $"{HopLimit}", "-m", "comment", "--comment", comment];
        Run(["iptables", "-w", "-I", .. rule]);
        _rules.Add(rule);
        return comment;
    }

    private static long Counted(string comment)
    {
        var line = Run(["iptables", "-w", "-nvxL", "OUTPUT"]).Split('\n').Single(line => line.Contains(comment, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
    }

    private static async Task<long> ReadToEndAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            total += n;
        }

        return total;
    }

    private static string Run(string[] command, bool check = true)
    {
        using var process = Process.Start(new ProcessStartInfo(command[0], command[1..])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{string.Join(' ', command)} failed: {stderr}");
        }

        return stdout.Result;
    }
}
