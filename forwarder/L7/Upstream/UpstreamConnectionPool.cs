using System.Net;
using Forwarder.L7.Http2.Client;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Upstream;

/// <summary>
/// Keep-alive connections to one upstream endpoint. A request rents one (the most recently
/// returned first, as it is the likeliest to be alive and warm), or a new one is dialled; it is
/// returned only if the exchange left it clean. An idle connection the server has closed, or on
/// which it sent anything unasked, is discarded at rent time, so a broken connection is never
/// reused. Idle connections past the idle timeout are closed. With a connection limit, a dial
/// past it fails at once with <see cref="UpstreamPoolFullException"/> (Envoy's max_connections
/// circuit breaker), so an overloaded endpoint is not buried under new connections.
/// <para>
/// Exchanges that go through <see cref="SocketsHttpHandler"/> (HTTP/2 upstreams, and HTTP/2
/// clients' requests) use <see cref="Http"/>: a handler of this endpoint alone, dialling through
/// the same <paramref name="dialer"/> (so node links, the connect timeout and the connection
/// limit hold there too), with its own pool of connections. There a connection is idle when no
/// request is in flight on it (an HTTP/2 connection: no stream open); <paramref name="maxIdle"/>
/// of 0 closes it once idle (at the handler's next sweep, within a second), any other value
/// keeps it for <paramref name="idleTimeout"/> (the handler cannot count idle connections, and
/// HTTP/2 multiplexes requests over one or few connections anyway).
/// </para>
/// </summary>
/// <param name="maxConnections">Open connections (in use and idle) allowed at once; 0 for no limit.</param>
/// <param name="connectTimeout">How long <see cref="Http"/> waits for a connection; zero for the handler's default.</param>
internal sealed class UpstreamConnectionPool(EndPoint endpoint, IConnectionFactory dialer, int maxIdle, TimeSpan idleTimeout, TimeProvider time, int maxConnections = 0, TimeSpan connectTimeout = default) : IAsyncDisposable
{
    /// <summary>The handler's idle timeout for maxIdleConnections: 0, the least it takes (its sweep then closes an idle connection within a second).</summary>
    private static readonly TimeSpan NoIdleKept = TimeSpan.FromMilliseconds(1);

    /// <summary>How long a closed pool's HTTP/2 streams may still run before their connections are aborted.</summary>
    private static readonly TimeSpan RetireGrace = TimeSpan.FromSeconds(60);

    private readonly Stack<(ConnectionContext Connection, long IdleSince)> _idle = new();
    private readonly Lock _lock = new();
    private HttpMessageInvoker? _http;
    private Http2ClientPool? _http2;
    private bool _disposed;
    private int _open;

    public EndPoint EndPoint { get; } = endpoint;

    public int IdleCount
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    /// <summary>Connections dialled because no idle one could be reused.</summary>
    public long Dialled { get; private set; }

    /// <summary>Connections open now, in use or idle.</summary>
    public int OpenCount => Volatile.Read(ref _open);

    /// <summary>The HTTP client of this endpoint, made on first use (most endpoints never need one).</summary>
    public HttpMessageInvoker Http
    {
        get
        {
            if (Volatile.Read(ref _http) is { } http)
            {
                return http;
            }

            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _http ??= new HttpMessageInvoker(CreateHandler());
            }
        }
    }

    /// <summary>
    /// The endpoint's own HTTP/2 connections, for the native HTTP/2 front's requests to a service
    /// with <c>http.version: "2"</c>: made on first use, dialled through the same dialer, drained
    /// when this pool closes. The connection limit (http.maxConnections) caps its connections too, and
    /// there is none without it (they are not counted in <see cref="OpenCount"/>: each carries
    /// many streams).
    /// </summary>
    public Http2ClientPool Http2
    {
        get
        {
            if (Volatile.Read(ref _http2) is { } http2)
            {
                return http2;
            }

            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _http2 ??= new Http2ClientPool(
                    Http2ClientDialer.Cleartext(dialer, EndPoint),
                    new Http2ClientOptions
                    {
                        ConnectTimeout = connectTimeout > TimeSpan.Zero ? connectTimeout : new Http2ClientOptions().ConnectTimeout,
                        IdleTimeout = idleTimeout,
                        // Unbounded unless the service says (as SocketsHttpHandler on the Kestrel
                        // path): a small fixed cap queued everything past cap x the server's
                        // stream limit (e.g. long gRPC streams) until the route's timeout.
                        MaxConnections = maxConnections > 0 ? maxConnections : int.MaxValue,
                        Time = time,
                    });
            }
        }
    }

    /// <summary>A live idle connection, or a new one.</summary>
    public async ValueTask<(ConnectionContext Connection, bool Reused)> RentAsync(CancellationToken cancellationToken)
    {
        if (await TakeIdleAsync().ConfigureAwait(false) is { } idle)
        {
            return (idle, true);
        }

        return (await DialAsync(cancellationToken).ConfigureAwait(false), false);
    }

    /// <summary>The most recently returned idle connection that is still clean, or null; completes synchronously unless a stale one has to be closed.</summary>
    public async ValueTask<ConnectionContext?> TakeIdleAsync()
    {
        while (TryTakeIdle(out var connection, out var idleFor))
        {
            if (idleFor < idleTimeout && IsClean(connection))
            {
                return connection;
            }

            await CloseAsync(connection).ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>A new connection to the endpoint, to be returned to this pool after use.</summary>
    /// <exception cref="UpstreamPoolFullException">The endpoint already has its limit of open connections.</exception>
    public async ValueTask<ConnectionContext> DialAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _open) > maxConnections && maxConnections > 0)
        {
            Interlocked.Decrement(ref _open);
            throw new UpstreamPoolFullException(EndPoint, maxConnections);
        }

        try
        {
            var dialled = await dialer.ConnectAsync(EndPoint, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                Dialled++;
            }

            return dialled;
        }
        catch
        {
            Interlocked.Decrement(ref _open);
            throw;
        }
    }

    /// <summary>
    /// Takes the connection back after an exchange. Only a connection whose request and response
    /// were both read to their end, with nothing left over, may be reused.
    /// </summary>
    public ValueTask ReturnAsync(ConnectionContext connection, bool reusable)
    {
        if (reusable)
        {
            lock (_lock)
            {
                if (!_disposed && _idle.Count < maxIdle)
                {
                    _idle.Push((connection, time.GetTimestamp()));
                    return ValueTask.CompletedTask;
                }
            }
        }

        return CloseAsync(connection);
    }

    /// <summary>Closes idle connections that have waited longer than the idle timeout.</summary>
    public async ValueTask EvictIdleAsync()
    {
        List<ConnectionContext> expired = [];
        lock (_lock)
        {
            var kept = _idle.Where(i => time.GetElapsedTime(i.IdleSince) < idleTimeout).Reverse().ToArray();
            expired.AddRange(_idle.Where(i => time.GetElapsedTime(i.IdleSince) >= idleTimeout).Select(i => i.Connection));
            _idle.Clear();
            foreach (var item in kept)
            {
                _idle.Push(item);
            }
        }

        foreach (var connection in expired)
        {
            await CloseAsync(connection).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Closes the pool once a reload dropped it: idle connections at once, while streams in flight
    /// on the native front's HTTP/2 connections finish (a reload must not cut them) for up to a
    /// minute, or until <paramref name="abort"/> (shutdown) aborts them. Never throws.
    /// </summary>
    public async Task RetireAsync(CancellationToken abort)
    {
        if (await CloseAllAsync().ConfigureAwait(false) is { } http2)
        {
            await http2.RetireAsync(RetireGrace, abort).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the pool at shutdown, once the front has drained: what is still open is aborted.</summary>
    public async ValueTask DisposeAsync()
    {
        if (await CloseAllAsync().ConfigureAwait(false) is { } http2)
        {
            await http2.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Refuses new rents, closes the idle connections and the handler; returns the HTTP/2 connections for the caller to close.</summary>
    private async ValueTask<Http2ClientPool?> CloseAllAsync()
    {
        ConnectionContext[] idle;
        HttpMessageInvoker? http;
        Http2ClientPool? http2;
        lock (_lock)
        {
            _disposed = true;
            idle = [.. _idle.Select(i => i.Connection)];
            _idle.Clear();
            http = _http;
            http2 = _http2;
        }

        http?.Dispose();
        foreach (var connection in idle)
        {
            await CloseAsync(connection).ConfigureAwait(false);
        }

        return http2;
    }

    private SocketsHttpHandler CreateHandler()
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = maxIdle == 0 ? NoIdleKept : idleTimeout,
            MaxConnectionsPerServer = maxConnections > 0 ? maxConnections : int.MaxValue,
            ActivityHeadersPropagator = null,

            // Every request goes to this endpoint whatever its URI says, over the service's dialer.
            ConnectCallback = async (_, cancellationToken) => new ConnectionStream(await dialer.ConnectAsync(EndPoint, cancellationToken).ConfigureAwait(false)),
        };
        if (connectTimeout > TimeSpan.Zero)
        {
            handler.ConnectTimeout = connectTimeout;
        }

        return handler;
    }

    /// <summary>Closes a connection this pool dialled, making room under the limit.</summary>
    private ValueTask CloseAsync(ConnectionContext connection)
    {
        Interlocked.Decrement(ref _open);
        return connection.DisposeAsync();
    }

    private bool TryTakeIdle(out ConnectionContext connection, out TimeSpan idleFor)
    {
        lock (_lock)
        {
            if (_idle.TryPop(out var item))
            {
                connection = item.Connection;
                idleFor = time.GetElapsedTime(item.IdleSince);
                return true;
            }
        }

        connection = null!;
        idleFor = default;
        return false;
    }

    /// <summary>An idle connection is clean if it is open and has nothing to read: a FIN, a reset or stray bytes all mean it must go.</summary>
    private static bool IsClean(ConnectionContext connection)
    {
        if (connection.ConnectionClosed.IsCancellationRequested)
        {
            return false;
        }

        var input = connection.Transport.Input;
        try
        {
            if (!input.TryRead(out var result))
            {
                return true;
            }

            input.AdvanceTo(result.Buffer.Start);
            return false;
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
        {
            // The receive side already failed (a reset, an abort): certainly not reusable.
            return false;
        }
    }
}
