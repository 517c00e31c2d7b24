using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Admin;

public sealed class MetricsEndpointTests
{
    /// <summary>An http route split across many services: an exposition of megabytes, more than loopback buffers hold.</summary>
    private static string ManyServices(int count) => $$"""
        admin: { listen: 127.0.0.1:0 }
        listeners:
          - name: web
            listen: 127.0.0.1:0
            protocol: http
            routes:
              - { name: all, split: [ {{string.Join(", ", Enumerable.Range(0, count).Select(i => $"{{ service: s{i}, weight: 1 }}"))}} ] }
        services:
        {{string.Join("\n", Enumerable.Range(0, count).Select(i => $"  s{i}: {{ endpoints: [ {{ address: '127.0.0.1:{1 + (i % 1000)}' }} ] }}"))}}
        """;

    [Fact]
    public async Task Scrape_TwoInProgress_ThirdGets429_ThenServedOnceOneEnds()
    {
        await using var forwarder = await RunningForwarder.StartAsync(ManyServices(4000));
        var admin = new IPEndPoint(IPAddress.Loopback, forwarder.AdminAddress.Port);

        // Two scrapers that read the status line and then stop reading: their scrapes stall on a full socket.
        var stalled = new[] { await StartScrapeAsync(admin), await StartScrapeAsync(admin) };
        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress, Timeout = TimeSpan.FromSeconds(60) };

        using (var refused = await http.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal("1", Assert.Single(refused.Headers.GetValues("Retry-After")));
        }

        stalled[0].Dispose();
        await Eventually.TrueAsync(
            async () =>
            {
                using var response = await http.GetAsync("/metrics");
                return response.StatusCode == HttpStatusCode.OK
                    && (await response.Content.ReadAsStringAsync()).Contains("forwarder_service_connections_total{service=\"s3999\"} 0\n", StringComparison.Ordinal);
            },
            "a scrape is served once a slot is free");
        stalled[1].Dispose();
    }

    /// <summary>Sends GET /metrics and waits for "HTTP/1.1 200", leaving the rest unread.</summary>
    private static async Task<Socket> StartScrapeAsync(IPEndPoint admin)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(admin);
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n"), SocketFlags.None);
        var head = new byte[12];
        var received = 0;
        while (received < head.Length)
        {
            var n = await socket.ReceiveAsync(head.AsMemory(received), SocketFlags.None);
            Assert.NotEqual(0, n);
            received += n;
        }

        Assert.Equal("HTTP/1.1 200", Encoding.ASCII.GetString(head));
        return socket;
    }
}
