using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Tests.Udp;

/// <summary>
/// Forwarding a datagram each way must not allocate once the session is open: the receive
/// address is reused, the session table compares addresses by value, and reply buffers are pooled.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class UdpSteadyStateAllocationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ForwardedRoundTrips_AllocateNothingPerDatagram()
    {
        // Blocking sockets on dedicated threads on both sides: the peers themselves allocate nothing per datagram.
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var echo = Task.Factory.StartNew(() => Echo(backend), TaskCreationOptions.LongRunning);

        await using var forwarder = await RunningForwarder.StartAsync($$"""
            listeners:
              - { name: front, listen: '127.0.0.1:0', protocol: udp, service: back }
            services:
              back:
                endpoints: [ { address: '{{backend.LocalEndPoint}}' } ]
            """);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 30_000 };
        client.Connect(forwarder.EndPoint("front"));
        var message = new byte[64];
        var reply = new byte[64];

        var (perRoundTrip, _) = await SteadyStateAllocations.MeasureAsync(count => RoundTrips(client, message, reply, count));

        await forwarder.StopAsync();
        backend.Dispose();
        await echo;
        output.WriteLine($"{perRoundTrip:F2} bytes allocated per round trip (two proxied datagrams)");
        Assert.True(perRoundTrip < 8, $"{perRoundTrip:F2} bytes allocated per round trip");
    }

    private static void Echo(Socket socket)
    {
        var buffer = new byte[2048];
        var from = new SocketAddress(AddressFamily.InterNetwork);
        try
        {
            while (true)
            {
                var length = socket.ReceiveFrom(buffer, SocketFlags.None, from);
                socket.SendTo(buffer.AsSpan(0, length), SocketFlags.None, from);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Disposed at the end of the test.
        }
    }

    // No Assert calls inside: xunit's comparers allocate, and this loop is what is measured.
    private static void RoundTrips(Socket client, byte[] message, byte[] reply, int count)
    {
        for (var i = 0; i < count; i++)
        {
            client.Send(message);
            if (client.Receive(reply) != reply.Length)
            {
                throw new InvalidDataException("A reply of another length came back.");
            }
        }
    }
}
