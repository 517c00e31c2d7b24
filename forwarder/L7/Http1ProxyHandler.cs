using Forwarder.Configuration;
using Forwarder.L7.Http2;
using Forwarder.L7.Http2.Proxy;
using Forwarder.Metrics;
using Microsoft.AspNetCore.Connections;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.L7;

/// <summary>Serves an http listener's connections: one <see cref="Http1ProxySession"/> each.</summary>
internal sealed partial class Http1ProxyHandler(UpstreamConnector connector, ConnectionTracker tracker, HttpConnectionEngine engine, Http2Front http2, Http2NativeFront native, ILogger<Http1ProxyHandler> logger)
{
    private readonly LogThrottle _throttle = new();

    public UpstreamConnector Connector => connector;

    public ConnectionTracker Tracker => tracker;

    /// <summary>Moves a just-accepted connection onto the engine http connections run on.</summary>
    public ValueTask<ConnectionContext> AdoptAsync(ConnectionContext connection) => engine.AdoptAsync(connection);

    /// <summary>Serves a connection that opened with the HTTP/2 preface, until it ends.</summary>
    public Task ServeHttp2Async(ClientConnection client, IListenerModelSource host, ListenerMetrics metrics)
    {
        // HTTP/2 keeps connections open on purpose (PINGs, GOAWAY); its server times them out itself.
        client.IdleTimeout = TimeSpan.Zero;
        var state = new Http2ConnectionState(host, metrics);
        return host.Model.Http?.Config.Http2Engine == Http2Engine.Native
            ? native.ServeAsync(client, this, state)
            : http2.ServeAsync(client, tracker, state);
    }

    /// <summary>Shutdown: the native engine's HTTP/2 connections are told to go away (Kestrel's are by <see cref="Http2Front.StopAsync"/>).</summary>
    public void StopHttp2() => native.Stop();

    public Task HandleAsync(ClientConnection client, IListenerModelSource host, ListenerMetrics metrics, CancellationToken stopping)
        => new Http1ProxySession(this, client, host, metrics, stopping).RunAsync();

    [LoggerMessage(EventId = 401, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: request refused with {Status}: {Reason}")]
    public partial void LogRefused(string connectionId, int status, string reason);

    /// <summary>Releasing an inline request body at the end of a client read threw; the other bodies of that read were still released.</summary>
    [LoggerMessage(EventId = 408, Level = LogLevel.Error, Message = "Connection {ConnectionId}: releasing a request body at the end of a read failed")]
    public partial void LogBodyReleaseFailed(string connectionId, Exception error);

    /// <summary>No endpoint of the service may take traffic (all unhealthy or ejected).</summary>
    public void WarnNoneAvailable(string route, string service)
    {
        if (_throttle.TryLog(route, service, out var more))
        {
            LogNoneAvailable(route, service, more);
        }
    }

    /// <summary>No endpoint of the service could be reached (or all were at their connection limit).</summary>
    public void WarnUnreachable(string route, string service)
    {
        if (_throttle.TryLog(route, service + "#unreachable", out var more))
        {
            LogUnreachable(route, service, more);
        }
    }

    public void WarnExchangeFailed(string route, string service, string endpoint, string failure, int status)
    {
        if (_throttle.TryLog(route, endpoint, out var more))
        {
            LogExchangeFailed(route, service, endpoint, failure, status, more);
        }
    }

    /// <summary>A native HTTP/2 connection's request was routed to a service that is not HTTP/2 upstream (after a reload).</summary>
    public void WarnNotHttp2(string route, string service)
    {
        if (_throttle.TryLog(route, service + "#not-h2", out var more))
        {
            LogNotHttp2(route, service, more);
        }
    }

    public void WarnResponseCut(string route, string service, string endpoint, string outcome)
    {
        if (_throttle.TryLog(route, endpoint + "#cut", out var more))
        {
            LogResponseCut(route, service, endpoint, outcome, more);
        }
    }

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Route {Route}: service {Service} has no endpoint available (all unhealthy or ejected, and panicThreshold is 0); answered 503 ({Suppressed} more since the last such line)")]
    private partial void LogNoneAvailable(string route, string service, long suppressed);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Route {Route}: no endpoint of service {Service} could be reached or had room for a connection; answered 503 ({Suppressed} more since the last such line)")]
    private partial void LogUnreachable(string route, string service, long suppressed);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Route {Route}: endpoint {Endpoint} of service {Service} failed the exchange ({Failure}); answered {Status} ({Suppressed} more since the last such line)")]
    private partial void LogExchangeFailed(string route, string service, string endpoint, string failure, int status, long suppressed);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Route {Route}: endpoint {Endpoint} of service {Service} failed mid-response ({Outcome}); the client connection was reset ({Suppressed} more since the last such line)")]
    private partial void LogResponseCut(string route, string service, string endpoint, string outcome, long suppressed);

    [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "Route {Route}: service {Service} is not an HTTP/2 service, and this HTTP/2 connection runs on the native engine, which forwards only over HTTP/2 (its listener's engine was picked before a reload); answered 502, and the connection was told to go away ({Suppressed} more since the last such line)")]
    private partial void LogNotHttp2(string route, string service, long suppressed);
}
