using System.Collections.Concurrent;
using System.Net;
using Forwarder.L7.Http2.Server;
using Forwarder.Runtime;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// A loopback listener whose accepted sockets go onto the epoll engine (as the HTTP/1.1 native
/// path's do) and are each served by an <see cref="Http2ServerConnection"/> with the test handler.
/// </summary>
internal sealed class Http2TestServer : IAsyncDisposable
{
    private readonly PinnedBlockMemoryPool _pool;
    private readonly SocketSplicer _splicer = new(threads: 1);
    private readonly ConnectionTracker _tracker = new(TimeProvider.System);
    private readonly IConnectionListener _listener;
    private readonly Http2ServerOptions _options;
    private readonly Task _accepting;

    private Http2TestServer(IConnectionListener listener, PinnedBlockMemoryPool pool, Http2ServerOptions options)
    {
        _pool = pool;
        _listener = listener;
        _options = options;
        _accepting = AcceptAsync();
    }

    public TestHandler Handler { get; } = new();

    public ConcurrentQueue<Http2ServerConnection> Connections { get; } = new();

    /// <summary>Connections that ended, with the GOAWAY code each sent (null: none).</summary>
    public ConcurrentQueue<Forwarder.L7.Http2.Codec.Http2ErrorCode?> Ended { get; } = new();

    /// <summary>What a connection threw: RunAsync must not, whatever the peer does.</summary>
    public ConcurrentQueue<Exception> Faults { get; } = new();

    public int Port => ((IPEndPoint)_listener.EndPoint).Port;

    public string Url(string path) => $"http://127.0.0.1:{Port}{path}";

    public static async Task<Http2TestServer> StartAsync(Http2ServerOptions? options = null)
    {
        var pool = new PinnedBlockMemoryPool(4096);
        var listener = await new TcpListenerFactory(new TcpTransportOptions(), pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        return new Http2TestServer(listener, pool, options ?? new Http2ServerOptions());
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.UnbindAsync();
        await _listener.DisposeAsync();
        await _accepting;
        _splicer.Dispose();
        _tracker.Dispose();
        _pool.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (await _listener.AcceptAsync() is { } accepted)
        {
            _ = ServeAsync(accepted);
        }
    }

    private async Task ServeAsync(ConnectionContext accepted)
    {
        await using var connection = await EpollConnection.AdoptAsync(accepted, _splicer, _pool, 1 << 20);
        var server = new Http2ServerConnection(connection.Transport, Handler, _options, _tracker);
        Connections.Enqueue(server);
        try
        {
            await server.RunAsync();
        }
        catch (Exception e)
        {
            Faults.Enqueue(e);
            throw;
        }

        Ended.Enqueue(server.GoAwayCode);
    }
}
