using System.Collections.Concurrent;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Http2.Server;
using Forwarder.Runtime;

namespace Forwarder.L7.Http2.Proxy;

/// <summary>
/// HTTP/2 for http listeners on the proxy's own engine: the connection's pipes (the epoll
/// engine's, or TLS's) are served by an <see cref="Http2ServerConnection"/> whose streams go to an
/// <see cref="Http2ProxyHandler"/>. No Kestrel, no HttpContext, no SocketsHttpHandler: the
/// upstream exchange runs on the endpoint's <see cref="Client.Http2ClientPool"/>.
/// </summary>
internal sealed class Http2NativeFront(ConnectionTracker tracker)
{
    /// <summary>
    /// Streams a client may have open on one connection (HAProxy's default too). The request
    /// bodies one connection makes the proxy hold are bounded by its connection window (credited
    /// as the bodies are forwarded), whatever the number of streams.
    /// </summary>
    private const int MaxStreamsPerConnection = 100;

    private readonly ConcurrentDictionary<Http2ServerConnection, byte> _connections = new(ReferenceEqualityComparer.Instance);
    private volatile bool _stopping;

    /// <summary>Serves the connection over HTTP/2 until the client, its deadlines or shutdown end it.</summary>
    public async Task ServeAsync(ClientConnection client, Http1ProxyHandler owner, Http2ConnectionState state)
    {
        var config = state.Host.Model.Http?.Config;
        var limits = config?.Limits ?? Http1Limits.Default;
        var options = new Http2ServerOptions
        {
            HeaderTimeout = config?.HeaderTimeout ?? HttpListenerConfig.DefaultHeaderTimeout,
            KeepAliveTimeout = config?.KeepAliveTimeout ?? HttpListenerConfig.DefaultKeepAliveTimeout,
            CoalesceHandlerWrites = true,

            MaxConcurrentStreams = MaxStreamsPerConnection,

            // The listener's head limit, plus HPACK's 32 bytes per field (and the four pseudo-
            // headers): what fits as an HTTP/1.1 head is not refused as a header list first.
            // Describe then holds the request to the listener's limits exactly.
            MaxHeaderListSize = limits.MaxHeadBytes + (32 * (limits.MaxHeaders + 4)),
        };
        var server = new Http2ServerConnection(client.Client.Transport, new Http2ProxyHandler(owner, client, state, tracker), options, tracker);
        _connections.TryAdd(server, 0);
        try
        {
            if (_stopping)
            {
                // Accepted as shutdown began: it is told to go away at once.
                server.Shutdown();
            }

            await server.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _connections.TryRemove(server, out _);
        }
    }

    /// <summary>Shutdown: every connection gets a GOAWAY NO_ERROR and closes once its streams have finished (the drain deadline aborts what is left).</summary>
    public void Stop()
    {
        _stopping = true;
        foreach (var (server, _) in _connections)
        {
            server.Shutdown();
        }
    }
}
