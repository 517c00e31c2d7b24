using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Tests.L7;

/// <summary>
/// A proxied keep-alive request must cost the proxy next to no garbage once connections are up:
/// every allocation per request is GC work, and GC pauses land in the latency tail. Counted in
/// bytes, which unlike time is not noisy. Client and backend are blocking sockets on their own
/// threads, so they allocate nothing themselves.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class Http1SteadyStateAllocationTests(ITestOutputHelper output)
{
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nhello world\n");

    // The epoll engine allocates nothing per request. The pipes engine (the fallback off Linux)
    // rides .NET's socket engine, which costs about a hundred bytes per request of its own.
    [Theory]
    [InlineData("epoll", 16)]
    [InlineData("pipes", 256)]
    public async Task ProxiedRequests_AllocateAlmostNothing(string engine, double allowed)
    {
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        backend.Listen();
        var serving = Task.Factory.StartNew(() => Serve(backend), TaskCreationOptions.LongRunning);

        await using var forwarder = await RunningForwarder.StartAsync($$"""
            tcp: { engine: {{engine}} }
            listeners:
              - name: web
                listen: '127.0.0.1:0'
                protocol: http
                routes: [ { service: app } ]
            services:
              app:
                endpoints: [ { address: '127.0.0.1:{{((IPEndPoint)backend.LocalEndPoint!).Port}}' } ]
            """);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 30_000 };
        client.Connect(forwarder.EndPoint("web"));
        var request = Encoding.ASCII.GetBytes("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: test\r\n\r\n");
        var reply = new byte[4096];

        var perRequest = await Task.Factory.StartNew(
            () =>
            {
                Requests(client, request, reply, 5_000);
                const int measured = 20_000;
                var before = GC.GetTotalAllocatedBytes(precise: true);
                Requests(client, request, reply, measured);
                return (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)measured;
            },
            TaskCreationOptions.LongRunning);

        output.WriteLine($"engine={engine}: {perRequest:F1} bytes allocated per proxied request");

        // A pool may add a block now and then; anything per request would show as tens of bytes.
        Assert.True(perRequest < allowed, $"{perRequest:F1} bytes allocated per proxied request");

        // The backend thread ends once the forwarder closes its pooled connection and the listener is gone.
        backend.Dispose();
        GC.KeepAlive(serving);
    }

    // No Assert calls inside: xunit's comparers allocate, and this loop is what is measured.
    private static void Requests(Socket client, byte[] request, byte[] reply, int count)
    {
        for (var i = 0; i < count; i++)
        {
            client.Send(request);
            var received = 0;
            while (received < 4 || !EndsResponse(reply, received))
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

    private static bool EndsResponse(byte[] reply, int length) => reply.AsSpan(0, length).EndsWith("hello world\n"u8);

    /// <summary>Answers every request on every connection with the same bytes, until the listener closes.</summary>
    private static void Serve(Socket listener)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            Socket connection;
            try
            {
                connection = listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            using (connection)
            {
                try
                {
                    Answer(connection, buffer);
                }
                catch (SocketException)
                {
                    // The proxy reset its pooled connection at shutdown.
                }
            }
        }
    }

    private static void Answer(Socket connection, byte[] buffer)
    {
                var filled = 0;
                while (true)
                {
                    var read = connection.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
                    if (read == 0)
                    {
                        break;
                    }

                    filled += read;
                    int end;
                    while ((end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) >= 0)
                    {
                        connection.Send(Response);
                        buffer.AsSpan(end + 4, filled - end - 4).CopyTo(buffer);
                        filled -= end + 4;
                    }
                }
    }
}
