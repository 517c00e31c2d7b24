using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Tests.L4;

/// <summary>
/// The forwarding path must not allocate per chunk once connections are up: garbage would mean
/// GC pauses in the latency tail. Counted in bytes, which unlike time is not noisy.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class SteadyStateAllocationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("pipes", true)]
    [InlineData("pipes", false)]
    [InlineData("epoll", true)]
    public async Task ForwardedRoundTrips_AllocateNothingPerChunk(string engine, bool directSend)
    {
        await using var forwarder = await RunningForwarder.StartAsync($$"""
            tcp: { engine: {{engine}}, directSend: {{directSend.ToString().ToLowerInvariant()}} }
            listeners:
              - { name: front, listen: '127.0.0.1:0', protocol: tcp, service: back }
              - { name: backend, listen: '127.0.0.1:0', protocol: echo }
            services:
              back:
                endpoints: [ { address: '127.0.0.1:1' } ]
            """);

        // The built-in echo listener is the backend; its port is known once bound, so a reload
        // points the service at it.
        var backendPort = forwarder.EndPoint("backend").Port;
        Assert.True(await forwarder.ReloadAsync(File.ReadAllText(forwarder.ConfigPath).Replace("127.0.0.1:1'", $"127.0.0.1:{backendPort}'", StringComparison.Ordinal)));

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 30_000 };

        // Connected synchronously: once a socket has been used asynchronously, .NET emulates its
        // blocking calls, and that emulation allocates.
        client.Connect(forwarder.EndPoint("front"));
        var message = new byte[64];
        var reply = new byte[64];

        // Blocking calls on a dedicated thread: the client itself allocates nothing per round trip.
        // A pool may still add a 64 KiB block now and then; an allocation per chunk would show at
        // 24 bytes or more per round trip in every window.
        var (perRoundTrip, _) = await SteadyStateAllocations.MeasureAsync(count => RoundTrips(client, message, reply, count));

        output.WriteLine($"engine={engine} directSend={directSend}: {perRoundTrip:F2} bytes allocated per round trip (two proxied chunks, two echo chunks)");
        Assert.True(perRoundTrip < 8, $"{perRoundTrip:F2} bytes allocated per round trip");
    }

    // No Assert calls inside: xunit's comparers allocate, and this loop is what is measured.
    private static void RoundTrips(Socket client, byte[] message, byte[] reply, int count)
    {
        for (var i = 0; i < count; i++)
        {
            client.Send(message);
            var received = 0;
            while (received < reply.Length)
            {
                var read = client.Receive(reply, received, reply.Length - received, SocketFlags.None);
                if (read == 0)
                {
                    throw new EndOfStreamException("The proxy closed the connection.");
                }

                received += read;
            }
        }
    }
}
