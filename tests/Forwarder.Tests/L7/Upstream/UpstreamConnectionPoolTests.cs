using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.L7.Upstream;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tests.L7.Upstream;

public sealed class UpstreamConnectionPoolTests : IAsyncDisposable
{
    private readonly PinnedBlockMemoryPool _memory = new(4096);
    private readonly TcpConnectionFactory _dialer;
    private int _served;

    public UpstreamConnectionPoolTests() => _dialer = new TcpConnectionFactory(new TcpTransportOptions(), _memory);

    public ValueTask DisposeAsync()
    {
        _memory.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Answers each "ping" with "pong"; then does what <paramref name="after"/> says once the first exchange is done.</summary>
    private TcpTestServer Server(Func<Socket, Task>? after = null) => new(async socket =>
    {
        var buffer = new byte[64];
        var first = true;
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                Interlocked.Increment(ref _served);
                return;
            }

            await socket.SendAsync("pong"u8.ToArray(), SocketFlags.None);
            if (first && after is not null)
            {
                first = false;
                await after(socket);
                Interlocked.Increment(ref _served);
                return;
            }
        }
    });

    private static async Task ExchangeAsync(ConnectionContext connection)
    {
        await connection.Transport.Output.WriteAsync("ping"u8.ToArray());
        var received = 0;
        while (received < 4)
        {
            var result = await connection.Transport.Input.ReadAsync();
            received += (int)result.Buffer.Length;
            Assert.Equal("pong"[..(int)result.Buffer.Length], Encoding.ASCII.GetString(result.Buffer.ToArray()));
            connection.Transport.Input.AdvanceTo(result.Buffer.End);
        }
    }

    /// <summary>Whether the idle connection's input shows something (end or bytes), without consuming it.</summary>
    private static bool InputShowsSomething(ConnectionContext connection)
    {
        if (!connection.Transport.Input.TryRead(out var result))
        {
            return false;
        }

        connection.Transport.Input.AdvanceTo(result.Buffer.Start);
        return true;
    }

    [Fact]
    public async Task Rent_AfterACleanReturn_ReusesTheSameConnection()
    {
        await using var server = Server();
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);

        var (first, reusedFirst) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(first);
        await pool.ReturnAsync(first, reusable: true);
        var (second, reusedSecond) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(second);

        Assert.False(reusedFirst);
        Assert.True(reusedSecond);
        Assert.Same(first, second);
        Assert.Equal(1, pool.Dialled);
        Assert.Equal(1, server.AcceptedCount);
        await pool.ReturnAsync(second, reusable: false);
    }

    [Fact]
    public async Task Rent_IdleConnectionTheServerClosed_IsDiscardedAndANewOneDialled()
    {
        await using var server = Server(socket =>
        {
            socket.Shutdown(SocketShutdown.Both);
            return Task.CompletedTask;
        });
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);
        var (connection, _) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(connection);
        await pool.ReturnAsync(connection, reusable: true);
        await Eventually.TrueAsync(() => InputShowsSomething(connection), "our side sees the server's FIN");

        var (next, reused) = await pool.RentAsync(CancellationToken.None);

        Assert.False(reused);
        Assert.NotSame(connection, next);
        Assert.Equal(2, pool.Dialled);
        await ExchangeAsync(next);
        await pool.ReturnAsync(next, reusable: false);
    }

    [Fact]
    public async Task Rent_IdleConnectionWithStrayBytes_IsDiscarded()
    {
        var returned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = Server(async socket =>
        {
            // Bytes nobody asked for, sent while the connection sits idle in the pool.
            await returned.Task;
            await socket.SendAsync("unasked"u8.ToArray(), SocketFlags.None);
            await socket.ReceiveAsync(new byte[1], SocketFlags.None);
        });
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);
        var (connection, _) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(connection);
        await pool.ReturnAsync(connection, reusable: true);
        returned.SetResult();
        await Eventually.TrueAsync(() => InputShowsSomething(connection), "the stray bytes arrive");

        var (next, reused) = await pool.RentAsync(CancellationToken.None);

        Assert.False(reused);
        Assert.NotSame(connection, next);
        await pool.ReturnAsync(next, reusable: false);
    }

    [Fact]
    public async Task Return_NotReusable_ClosesTheConnection()
    {
        await using var server = Server();
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);
        var (connection, _) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(connection);

        await pool.ReturnAsync(connection, reusable: false);

        Assert.Equal(0, pool.IdleCount);
        await Eventually.TrueAsync(() => Volatile.Read(ref _served) == 1, "the server sees the connection end");
    }

    [Fact]
    public async Task Return_BeyondMaxIdle_ClosesTheExtraConnections()
    {
        await using var server = Server();
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 2, TimeSpan.FromMinutes(1), TimeProvider.System);
        var rented = new List<ConnectionContext>();
        for (var i = 0; i < 3; i++)
        {
            var (connection, _) = await pool.RentAsync(CancellationToken.None);
            await ExchangeAsync(connection);
            rented.Add(connection);
        }

        foreach (var connection in rented)
        {
            await pool.ReturnAsync(connection, reusable: true);
        }

        Assert.Equal(2, pool.IdleCount);
        await Eventually.TrueAsync(() => Volatile.Read(ref _served) == 1, "the third connection is closed");
    }

    [Fact]
    public async Task EvictIdle_PastTheIdleTimeout_ClosesThem()
    {
        await using var server = Server();
        await using var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMilliseconds(100), TimeProvider.System);
        var (connection, _) = await pool.RentAsync(CancellationToken.None);
        await ExchangeAsync(connection);
        await pool.ReturnAsync(connection, reusable: true);

        await Eventually.TrueAsync(async () =>
        {
            await pool.EvictIdleAsync();
            return pool.IdleCount == 0;
        }, "the idle connection times out");

        await Eventually.TrueAsync(() => Volatile.Read(ref _served) == 1, "the server sees it closed");
    }

    [Fact]
    public async Task Http_Http2Upstream_MaxIdleZero_ClosesTheIdleConnection_OtherwiseItIsReused()
    {
        var connections = new ConcurrentDictionary<string, ConcurrentDictionary<string, byte>>(StringComparer.Ordinal);
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            connections.GetOrAdd(context.Request.Path.Value!, _ => new(StringComparer.Ordinal)).TryAdd(context.Connection.Id, 0);
            return Task.CompletedTask;
        });
        var endpoint = new IPEndPoint(IPAddress.Loopback, backend.Port);
        await using var none = new UpstreamConnectionPool(endpoint, _dialer, maxIdle: 0, TimeSpan.FromMinutes(1), TimeProvider.System);
        await using var kept = new UpstreamConnectionPool(endpoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);

        async Task SendAsync(UpstreamConnectionPool pool, string path)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{backend.Port}{path}") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await pool.Http.SendAsync(request, CancellationToken.None);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // One request at a time, so each finds the connection idle: with maxIdleConnections 0 it is
        // closed while idle and a later request dials anew; otherwise every request reuses it.
        await Eventually.TrueAsync(async () =>
        {
            await SendAsync(none, "/none");
            await SendAsync(kept, "/kept");
            return connections["/none"].Count >= 2;
        }, "a request without kept idle connections needed a new one");

        Assert.Single(connections["/kept"]);
    }

    [Fact]
    public async Task DisposeAsync_Http2StreamInFlight_ItsConnectionIsAbortedAtOnce()
    {
        var htdocs = Directory.CreateTempSubdirectory("h2c-pool").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(htdocs, "a.txt"), "a");
            await using var server = await Http2PeerServer.StartNghttpdAsync(htdocs, "--echo-upload");
            var pool = new UpstreamConnectionPool(server.EndPoint, _dialer, maxIdle: 4, TimeSpan.FromMinutes(1), TimeProvider.System);
            await using var stream = await pool.Http2.OpenStreamAsync(Http2ClientKit.Head("POST", "/a.txt", server.EndPoint), endStream: false);

            // Shutdown: the front has drained already, so nothing may linger (a reload retires instead).
            await pool.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

            var error = await Record.ExceptionAsync(() => Http2ClientKit.ReadResponseAsync(stream).WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.NotNull(error);
            Assert.IsNotType<TimeoutException>(error);
        }
        finally
        {
            Directory.Delete(htdocs, recursive: true);
        }
    }
}
