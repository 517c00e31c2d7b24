using Forwarder.L7.Http1;
using Forwarder.L7.Routing;

namespace Forwarder.Configuration;

/// <summary>An http listener's settings and routes.</summary>
/// <param name="HeaderTimeout">From a request's first byte to the end of its head; past it the client gets 408.</param>
/// <param name="KeepAliveTimeout">How long a client connection may sit idle between requests before it is closed.</param>
/// <param name="MaxBodySize">Larger request bodies are refused with 413; null for no limit.</param>
/// <param name="AccessLog">Where JSON-lines access records go: a file path, "stdout", or null for none.</param>
/// <param name="Http2">Connections that open with the HTTP/2 preface (h2c, prior knowledge) are served as HTTP/2.</param>
/// <param name="PathNormalization">How request paths are normalized before routing; the normalized path is the one sent upstream.</param>
/// <param name="BodyTimeout">The longest a client may pause while sending a request body; past it the client gets 408.</param>
/// <param name="Http2Engine">What serves the HTTP/2 connections when <paramref name="Http2"/> is on.</param>
internal sealed record HttpListenerConfig(
    bool Http2,
    Http1Limits Limits,
    TimeSpan HeaderTimeout,
    TimeSpan KeepAliveTimeout,
    long? MaxBodySize,
    string? AccessLog,
    IReadOnlyList<RouteConfig> Routes,
    PathNormalization PathNormalization = PathNormalization.DotSegments,
    TimeSpan? BodyTimeout = null,
    Http2Engine Http2Engine = Http2Engine.Auto,
    int ResponseBufferPerConnection = HttpListenerConfig.DefaultResponseBufferPerConnection)
{
    /// <summary>What the upstream streams of one native HTTP/2 client connection may buffer of their responses past their opening windows (<c>http.responseBufferPerConnection</c>).</summary>
    public const int DefaultResponseBufferPerConnection = 4 * 1024 * 1024;

    public static readonly TimeSpan DefaultHeaderTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan DefaultKeepAliveTimeout = TimeSpan.FromSeconds(75);
    public static readonly TimeSpan DefaultBodyTimeout = TimeSpan.FromSeconds(60);

    /// <summary><see cref="BodyTimeout"/> with its default filled in.</summary>
    public TimeSpan RequestBodyTimeout => BodyTimeout ?? DefaultBodyTimeout;
}

/// <summary>What serves an http listener's HTTP/2 connections (<c>http.http2</c>).</summary>
internal enum Http2Engine
{
    /// <summary>The native engine when every route's services speak HTTP/2 upstream and no route asks for WebSockets explicitly; else Kestrel.</summary>
    Auto,

    /// <summary>The proxy's own HTTP/2 server and client (<see cref="L7.Http2.Proxy.Http2ProxyHandler"/>).</summary>
    Native,

    /// <summary>An in-process Kestrel server, requests forwarded through SocketsHttpHandler (<see cref="L7.Http2.Http2Front"/>).</summary>
    Kestrel,
}

/// <summary>A route as configured: its conditions, and where matching requests go.</summary>
/// <param name="Backends">One service, or several sharing the traffic by weight (canary, blue-green).</param>
/// <param name="Timeout">From the request fully sent upstream to the response head back; past it the client gets 504.</param>
/// <param name="WebSocket">WebSocket upgrades are tunnelled; when false the upgrade is dropped and the request goes as a plain one.</param>
internal sealed record RouteConfig(string Name, RouteMatch Match, IReadOnlyList<RouteBackend> Backends, TimeSpan Timeout, RetryPolicy Retry, bool WebSocket = true)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(15);
}

internal sealed record RouteBackend(string Service, int Weight);

/// <summary>What an upstream's failure may be retried on, once the request has been sent.</summary>
[Flags]
internal enum RetryOn
{
    None = 0,

    /// <summary>The upstream closed or reset the connection before a response head.</summary>
    Reset = 1,

    /// <summary>The response head did not come within the route's timeout.</summary>
    Timeout = 2,

    Status502 = 4,
    Status503 = 8,
    Status504 = 16,

    /// <summary>Any 5xx response.</summary>
    Status5xx = 32,
}

/// <summary>
/// Retries of a request already sent, to another endpoint. Only idempotent requests without a
/// body are retried (the body is streamed, never held); a pooled connection found closed as it
/// was reused is tried once more for them too, and never for any other request. Retries in flight may not exceed
/// <paramref name="BudgetPercent"/> of the route's requests in flight, nor fewer than
/// <paramref name="MinConcurrent"/>: Envoy's retry budget, which stops retries from multiplying
/// load on a service that is already failing. Connection failures before anything was sent are
/// not retries: they move on to the next endpoint up to the service's connectAttempts.
/// </summary>
internal sealed record RetryPolicy(int Attempts, RetryOn On, int BudgetPercent, int MinConcurrent)
{
    public static RetryPolicy Default { get; } = new(1, RetryOn.Reset, 20, 3);

    public bool Retries(int status) => status switch
    {
        502 => (On & (RetryOn.Status502 | RetryOn.Status5xx)) != 0,
        503 => (On & (RetryOn.Status503 | RetryOn.Status5xx)) != 0,
        504 => (On & (RetryOn.Status504 | RetryOn.Status5xx)) != 0,
        >= 500 and < 600 => (On & RetryOn.Status5xx) != 0,
        _ => false,
    };
}
