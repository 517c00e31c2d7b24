using Forwarder.L7.Http2;
using Forwarder.Metrics;
using Microsoft.AspNetCore.Connections;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.L7;

/// <summary>Serves an http listener's connections: one <see cref="Http1ProxySession"/> each.</summary>
internal sealed partial class Http1ProxyHandler(UpstreamConnector connector, ConnectionTracker tracker, HttpConnectionEngine engine, Http2Front http2, HttpForwarder forwarder, ILogger<Http1ProxyHandler> logger)
{
    public UpstreamConnector Connector => connector;

    public ConnectionTracker Tracker => tracker;

    /// <summary>The client for services whose upstreams speak HTTP/2.</summary>
    public HttpMessageInvoker Upstream => forwarder.Upstream;

    /// <summary>Moves a just-accepted connection onto the engine http connections run on.</summary>
    public ValueTask<ConnectionContext> AdoptAsync(ConnectionContext connection) => engine.AdoptAsync(connection);

    /// <summary>Serves a connection that opened with the HTTP/2 preface, until it ends.</summary>
    public Task ServeHttp2Async(ClientConnection client, ListenerHost host, ListenerMetrics metrics)
    {
        // HTTP/2 keeps connections open on purpose (PINGs, GOAWAY); its server times them out itself.
        client.IdleTimeout = TimeSpan.Zero;
        return http2.ServeAsync(client.Client, new Http2ConnectionState(host, metrics));
    }

    public Task HandleAsync(ClientConnection client, ListenerHost host, ListenerMetrics metrics, CancellationToken stopping)
        => new Http1ProxySession(this, client, host, metrics, stopping).RunAsync();

    [LoggerMessage(EventId = 401, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: request refused with {Status}: {Reason}")]
    public partial void LogRefused(string connectionId, int status, string reason);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Route {Route}: service {Service} has no endpoint available (all unhealthy or ejected, and panicThreshold is 0); answered 503")]
    public partial void LogNoneAvailable(string route, string service);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Route {Route}: no endpoint of service {Service} could be reached; answered 503")]
    public partial void LogUnreachable(string route, string service);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Route {Route}: endpoint {Endpoint} of service {Service} failed the exchange ({Failure}); answered {Status}")]
    public partial void LogExchangeFailed(string route, string service, string endpoint, string failure, int status);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Route {Route}: endpoint {Endpoint} of service {Service} failed mid-response ({Outcome}); the client connection was reset")]
    public partial void LogResponseCut(string route, string service, string endpoint, string outcome);
}
