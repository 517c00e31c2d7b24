using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// The real executable under `prlimit --nofile=1024`: connection floods past the descriptor limit
/// meet the connection cap derived from it, and the process neither aborts nor stays stuck.
/// </summary>
public sealed class FileDescriptorLimitTests : IDisposable
{
    private const int FileLimit = 1024;

    /// <summary>Idle keep-alive connections the http service keeps to its endpoint: they stay counted after the flood.</summary>
    private const int IdleUpstreams = 4;

    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-fdlimit-").FullName;

    [Fact]
    public async Task Flood_PastTheFileLimit_ProcessSurvivesAndServesAgainOnceTheFloodCloses()
    {
        await using var echo = TcpTestServer.Echo();
        await using var web = HttpTestBackend.Text("fine");
        var path = Path.Combine(_directory, "forwarder.yaml");
        await File.WriteAllTextAsync(path, $"""
            admin: {"{"} listen: '127.0.0.1:0' {"}"}
            listeners:
              - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
              - name: web
                listen: '127.0.0.1:0'
                protocol: http
                routes: [ {"{"} service: site {"}"} ]
            services:
              back:
                endpoints: [ {"{"} address: '{echo.Address}' {"}"} ]
              site:
                http: {"{"} maxIdleConnections: {IdleUpstreams} {"}"}
                endpoints: [ {"{"} address: '{web.Address}' {"}"} ]
            """);
        using var forwarder = ForwarderProcess.StartWithFileLimit(FileLimit, "--config", path);
        var front = new IPEndPoint(IPAddress.Loopback, await forwarder.ListenerPortAsync("front"));
        var webEndPoint = new IPEndPoint(IPAddress.Loopback, await forwarder.ListenerPortAsync("web"));
        using var admin = new HttpClient { BaseAddress = await forwarder.AdminAddressAsync() };
        await forwarder.WaitForOutputAsync("proxied connections (derived;");
        var cap = int.Parse(Regex.Match(forwarder.Output, @"at most (\d+) proxied connections \(derived;").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

        // What the runtime holds at start is left to it, and 64 + 1024/16 more.
        Assert.InRange(cap, 100, (FileLimit - 64 - (FileLimit / 16)) / 2);

        for (var round = 0; round < 3; round++)
        {
            // More than the limit allows, to both listeners at once; each tcp client's byte makes
            // the forwarder dial (a second descriptor), each http client's request too.
            var tcpFlood = FloodAsync(front, 1_100, Encoding.ASCII.GetBytes("x"));
            var httpFlood = FloodAsync(webEndPoint, 300, Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: flood\r\n\r\n"));
            var clients = (await tcpFlood).Concat(await httpFlood).ToList();
            try
            {
                await Eventually.TrueAsync(
                    async () => forwarder.HasExited || Sample(await admin.GetStringAsync("/metrics"), "forwarder_connections_limit_reached_total{side=\"accept\"}") > round,
                    $"round {round}: the forwarder reaches its connection cap");
                Assert.False(forwarder.HasExited, $"the forwarder exited in round {round}:\n{forwarder.Errors}\n{Tail(forwarder.Output)}");
                var metrics = await admin.GetStringAsync("/metrics");
                Assert.True(Sample(metrics, "forwarder_connection_sockets_open") <= (2 * cap) + 3, metrics);
            }
            finally
            {
                foreach (var client in clients)
                {
                    // A reset frees both ends at once, with no TIME_WAIT on the forwarder's side.
                    client.LingerState = new LingerOption(true, 0);
                    client.Dispose();
                }
            }

            // Connections still queued in the backlog are accepted, find their client gone and close.
            await Eventually.TrueAsync(
                async () => forwarder.HasExited || Sample(await admin.GetStringAsync("/metrics"), "forwarder_connection_sockets_open") <= IdleUpstreams,
                $"round {round}: every proxied socket but the idle upstreams is closed once the flood is gone",
                TimeSpan.FromSeconds(60));
            Assert.False(forwarder.HasExited, $"the forwarder exited in round {round}:\n{forwarder.Errors}\n{Tail(forwarder.Output)}");
        }

        using (var tcp = await SocketClient.ConnectAsync(front))
        {
            await SocketClient.AssertEchoAsync(tcp, "after the floods");
        }

        using (var http = await SocketClient.ConnectAsync(webEndPoint))
        {
            await HttpTestBackend.SendAsync(http, "GET /after HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            var (status, _, body) = await Http1ProxyTests.ReadResponseAsync(new SocketReader(http));
            Assert.Equal(200, status);
            Assert.Equal("fine", body);
        }

        var final = await admin.GetStringAsync("/metrics");
        Assert.Equal(cap, Sample(final, "forwarder_connections_limit"));
        Assert.Contains("connection limit reached", forwarder.Output, StringComparison.Ordinal);
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz"));
        Assert.DoesNotContain("Out of memory", forwarder.Errors + forwarder.Output, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>Opens <paramref name="count"/> connections at once and sends each the bytes; those the backlog cannot hold in time are left out.</summary>
    private static async Task<List<Socket>> FloodAsync(IPEndPoint endPoint, int count, byte[] hello)
    {
        var attempts = Enumerable.Range(0, count).Select(async _ =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await socket.ConnectAsync(endPoint, timeout.Token);
                await socket.SendAsync(hello, SocketFlags.None);
                return socket;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                return null;
            }
        });
        var sockets = await Task.WhenAll(attempts);
        return [.. sockets.OfType<Socket>()];
    }

    private static long Sample(string metrics, string series)
    {
        var match = Regex.Match(metrics, $@"^{Regex.Escape(series)} (\d+)$", RegexOptions.Multiline);
        Assert.True(match.Success, $"{series} is missing from /metrics:\n{metrics}");
        return long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Tail(string output) => output.Length > 4000 ? output[^4000..] : output;
}
