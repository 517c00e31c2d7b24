using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp;

namespace Forwarder.Tests.L4;

/// <summary>Runs every L4 test on the pipes engine, sending straight from the source's buffer.</summary>
public sealed class PipesEngineTcpProxyTests : TcpProxyTests
{
    protected override string TcpSettings => "engine: pipes";
}

/// <summary>Runs every L4 test on the pipes engine, copying into the target's output pipe.</summary>
public sealed class PipesCopyEngineTcpProxyTests : TcpProxyTests
{
    protected override string TcpSettings => "engine: pipes, directSend: false";
}

/// <summary>Runs every L4 test on the epoll splicer.</summary>
public sealed class EpollEngineTcpProxyTests : TcpProxyTests
{
    protected override string TcpSettings => "engine: epoll";
}

public abstract class TcpProxyTests
{
    protected abstract string TcpSettings { get; }

    private string Config(params string[] endpoints) => $"""
        tcp: { "{" } {TcpSettings} { "}" }
        listeners:
          - name: front
            listen: 127.0.0.1:0
            protocol: tcp
            service: back
        services:
          back:
            connectTimeout: 2s
            endpoints:
        {string.Join("\n", endpoints.Select(e => $"      - address: {e}"))}
        """;

    [Fact]
    public async Task Echo_ThroughProxy_ReturnsSameBytesAndCountsThem()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));

        using (var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "hello through the proxy");
            await SocketClient.AssertEchoAsync(client, "and a second message");
        }

        var listener = forwarder.Metrics.Listener("front");
        var service = forwarder.Metrics.Service("back");
        await Eventually.TrueAsync(() => listener.Active == 0, "the closed connection is no longer active");
        Assert.Equal(1, listener.Total);
        Assert.Equal(43, listener.BytesReceived);
        Assert.Equal(43, listener.BytesSent);
        Assert.Equal(43, service.BytesToUpstream);
        Assert.Equal(43, service.BytesFromUpstream);
        Assert.Equal(1, service.Total);
    }

    /// <summary>
    /// A spliced connection ends with no managed frame waiting for it: the splice's end alone
    /// gives back everything the connection counted, on every side.
    /// </summary>
    [Fact]
    public async Task ClosedConnection_GivesBackEverythingItCounted()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        var endpoint = forwarder.Runtime.Services["back"].Endpoints[0].State;
        var budget = forwarder.Service<ConnectionBudget>();
        var tracker = forwarder.Service<ConnectionTracker>();

        using (var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "counted");
            Assert.Equal((1, 1, 1, 2), (tracker.Count, endpoint.InFlight, forwarder.Metrics.Service("back").Active, budget.OpenSockets));
        }

        await Eventually.TrueAsync(
            () => (tracker.Count, endpoint.InFlight, forwarder.Metrics.Service("back").Active, forwarder.Metrics.Listener("front").Active, budget.OpenSockets) == (0, 0, 0, 0, 0),
            () => $"tracked {tracker.Count}, endpoint in flight {endpoint.InFlight}, upstream active {forwarder.Metrics.Service("back").Active}, " +
                  $"listener active {forwarder.Metrics.Listener("front").Active}, budget {budget.OpenSockets}");
    }

    [Fact]
    public async Task LargeTransfer_BothWaysAtOnce_ArrivesIntact()
    {
        const int size = 64 * 1024 * 1024;
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        var payload = new byte[size];
        new Random(42).NextBytes(payload);
        var sending = Task.Run(async () =>
        {
            for (var offset = 0; offset < size; offset += 1 << 20)
            {
                await client.SendAsync(payload.AsMemory(offset, 1 << 20), SocketFlags.None);
            }

            client.Shutdown(SocketShutdown.Send);
        });
        var echoed = await SocketClient.ReceiveToEndAsync(client, TimeSpan.FromMinutes(2));
        await sending;

        Assert.Equal(size, echoed.Length);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(echoed));
    }

    [Fact]
    public async Task HalfClose_ClientFin_ServerStillAnswersAfterIt()
    {
        // The backend reads to the client's FIN, then answers: only works if the FIN crossed the
        // proxy without closing the direction back to the client.
        await using var backend = new TcpTestServer(async socket =>
        {
            var request = new MemoryStream();
            var buffer = new byte[1024];
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                request.Write(buffer, 0, read);
            }

            await socket.SendAsync(Encoding.ASCII.GetBytes($"received {request.Length} bytes after your FIN"), SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        await client.SendAsync(new byte[12345], SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);
        var answer = await SocketClient.ReceiveToEndAsync(client);

        Assert.Equal("received 12345 bytes after your FIN", Encoding.ASCII.GetString(answer));
    }

    [Fact]
    public async Task HalfClose_ServerFin_ClientCanKeepSending()
    {
        var receivedAfterFin = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpTestServer(async socket =>
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes("bye"), SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
            var buffer = new byte[64];
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
            receivedAfterFin.TrySetResult(Encoding.ASCII.GetString(buffer, 0, read));
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        var fromServer = await SocketClient.ReceiveToEndAsync(client);
        await client.SendAsync(Encoding.ASCII.GetBytes("still here"), SocketFlags.None);

        Assert.Equal("bye", Encoding.ASCII.GetString(fromServer));
        Assert.Equal("still here", await receivedAfterFin.Task.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task ClientReset_IsPropagatedAsResetToBackend()
    {
        var backendSaw = new TaskCompletionSource<SocketError>(TaskCreationOptions.RunContinuationsAsynchronously);
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpTestServer(async socket =>
        {
            connected.TrySetResult();
            var buffer = new byte[64];
            try
            {
                while (await socket.ReceiveAsync(buffer, SocketFlags.None) > 0)
                {
                }

                backendSaw.TrySetResult(SocketError.Success);
            }
            catch (SocketException ex)
            {
                backendSaw.TrySetResult(ex.SocketErrorCode);
            }
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(30));

        client.LingerState = new LingerOption(true, 0);
        client.Dispose();

        Assert.Equal(SocketError.ConnectionReset, await backendSaw.Task.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task BackendReset_IsPropagatedAsResetToClient()
    {
        await using var backend = new TcpTestServer(async socket =>
        {
            var buffer = new byte[64];
            await socket.ReceiveAsync(buffer, SocketFlags.None);
            socket.LingerState = new LingerOption(true, 0);
            socket.Dispose();
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        await client.SendAsync(new byte[] { 1 }, SocketFlags.None);
        var error = await Assert.ThrowsAsync<SocketException>(() => SocketClient.ReceiveToEndAsync(client));

        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Fact]
    public async Task EndpointDown_AnotherUp_EveryConnectionReachesTheLiveOne()
    {
        var downPort = FreePort();
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config($"127.0.0.1:{downPort}", backend.Address));

        for (var i = 0; i < 6; i++)
        {
            using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"request {i}");
        }

        var service = forwarder.Metrics.Service("back");
        Assert.Equal(6, backend.AcceptedCount);
        Assert.True(service.ConnectErrors(ConnectFailure.Refused) >= 3, $"refusals counted: {service.ConnectErrors(ConnectFailure.Refused)}");
        Assert.Equal(0, service.Exhausted);
    }

    [Fact]
    public async Task AllEndpointsDown_ClientClosedPromptly_AndCounted()
    {
        await using var forwarder = await RunningForwarder.StartAsync(Config($"127.0.0.1:{FreePort()}", $"127.0.0.1:{FreePort()}"));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        var received = await SocketClient.ReceiveToEndAsync(client, TimeSpan.FromSeconds(20));

        var service = forwarder.Metrics.Service("back");
        Assert.Empty(received);
        await Eventually.TrueAsync(() => service.Exhausted == 1, "the failed connection is counted");
        Assert.Equal(2, service.ConnectErrors(ConnectFailure.Refused));
    }

    [Fact]
    public async Task ConnectTimeout_SilentEndpoint_NextEndpointServes()
    {
        using var silent = new SilentEndpoint();
        await using var backend = TcpTestServer.Echo();
        var yaml = Config(silent.Address, backend.Address).Replace("connectTimeout: 2s", "connectTimeout: 300ms", StringComparison.Ordinal);
        await using var forwarder = await RunningForwarder.StartAsync(yaml);

        for (var i = 0; i < 4; i++)
        {
            using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"request {i}");
        }

        Assert.True(forwarder.Metrics.Service("back").ConnectErrors(ConnectFailure.Timeout) >= 1);
    }

    [Fact]
    public async Task ThousandConcurrentConnections_AllEchoed()
    {
        const int count = 1000;
        await using var backend = TcpTestServer.Echo();
        // A thousand upstream SYNs at once on a loaded 2-core machine can wait past the usual 2s
        // (a SYN retransmit alone is 1s): this test is about concurrency, not connect deadlines.
        var yaml = Config(backend.Address).Replace("connectTimeout: 2s", "connectTimeout: 20s", StringComparison.Ordinal);
        await using var forwarder = await RunningForwarder.StartAsync(yaml);
        var front = forwarder.EndPoint("front");
        var service = forwarder.Metrics.Service("back");

        var clients = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => SocketClient.ConnectAsync(front)));
        try
        {
            await Eventually.TrueAsync(
                () => service.Active == count,
                () => $"every connection has its upstream (listener total {forwarder.Metrics.Listener("front").Total}, upstream active {service.Active}, " +
                    $"total {service.Total}, exhausted {service.Exhausted}, refused {service.ConnectErrors(ConnectFailure.Refused)}, " +
                    $"timed out {service.ConnectErrors(ConnectFailure.Timeout)}, backend accepted {backend.AcceptedCount})",
                TimeSpan.FromSeconds(60));
            await Task.WhenAll(clients.Select((c, i) => SocketClient.AssertEchoAsync(c, $"connection {i} says hello")));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }

        await Eventually.TrueAsync(() => forwarder.Metrics.Listener("front").Active == 0, "all connections closed");
        Assert.Equal(count, forwarder.Metrics.Listener("front").Total);
    }

    [Fact]
    public async Task IdleTimeout_ClosesQuietConnection()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address).Replace("connectTimeout: 2s", "connectTimeout: 2s\n    idleTimeout: 2s", StringComparison.Ordinal));
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        // No byte is ever sent: the proxy closes the connection once it has been quiet for 2s.
        var received = await SocketClient.ReceiveToEndAsync(client, TimeSpan.FromSeconds(30));

        Assert.Empty(received);
        Assert.Equal(1, forwarder.Metrics.Service("back").Total);
        Assert.Equal(0, forwarder.Metrics.Service("back").Exhausted);
    }

    [Fact]
    public async Task ConnectionLimit_ExtraConnectionClosedAndCounted()
    {
        await using var backend = TcpTestServer.Echo();
        var yaml = Config(backend.Address).Replace("service: back", "service: back\n    maxConnections: 2", StringComparison.Ordinal);
        await using var forwarder = await RunningForwarder.StartAsync(yaml);
        var front = forwarder.EndPoint("front");
        using var first = await SocketClient.ConnectAsync(front);
        using var second = await SocketClient.ConnectAsync(front);
        await SocketClient.AssertEchoAsync(first, "one");
        await SocketClient.AssertEchoAsync(second, "two");

        using var third = await SocketClient.ConnectAsync(front);
        var closed = await ReceiveOrResetAsync(third);

        Assert.True(closed, "the connection over the limit is closed");
        Assert.Equal(1, forwarder.Metrics.Listener("front").Rejected);
        await SocketClient.AssertEchoAsync(first, "still served");
    }

    private static async Task<bool> ReceiveOrResetAsync(Socket socket)
    {
        try
        {
            return (await SocketClient.ReceiveToEndAsync(socket, TimeSpan.FromSeconds(20))).Length == 0;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
