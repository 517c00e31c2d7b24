using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.LoadBalancing.Health;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Forwarder.L7.Http2;

/// <summary>
/// Forwards a request Kestrel decoded (HTTP/2 from a client) to an endpoint of the routed
/// service over <see cref="SocketsHttpHandler"/>, in the service's upstream HTTP version: the
/// YARP way. Routing, hash keys, balancing, health, retries of idempotent bodiless requests and
/// the metrics are the HTTP/1.1 path's own: the request is described as an HTTP/1.1 head for
/// them. Bodies stream both ways (request and response at once, for gRPC's bidirectional
/// streams) and response trailers pass through.
/// </summary>
internal sealed partial class HttpForwarder : IDisposable
{
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host",
        "x-forwarded-proto", "x-forwarded-host",
    };

    private readonly HttpMessageInvoker _invoker;
    private readonly ConnectionTracker _tracker;
    private readonly ILogger<HttpForwarder> _logger;
    private readonly LogThrottle _throttle = new();
    private long _requests;

    public HttpForwarder(ConnectionTracker tracker, ILogger<HttpForwarder> logger)
    {
        _tracker = tracker;
        _logger = logger;
        _invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = UpstreamHttpConfig.Default.KeepAliveTimeout,
            ActivityHeadersPropagator = null,
        });
    }

    /// <summary>The pooled HTTP client both HTTP/2 clients' requests and HTTP/1.1 ones bound for HTTP/2 services go out on.</summary>
    public HttpMessageInvoker Upstream => _invoker;

    public void Dispose() => _invoker.Dispose();

    public async Task ForwardAsync(HttpContext context, Http2ConnectionState state)
    {
        if (state.Host.Model.Http is not { } model)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        var connect = context.Features.Get<IHttpExtendedConnectFeature>();
        var webSocket = connect is { IsExtendedConnect: true };
        if (webSocket && !string.Equals(connect!.Protocol, "websocket", StringComparison.OrdinalIgnoreCase))
        {
            // Extended CONNECT for anything but WebSocket has nowhere to go upstream.
            await RefuseAsync(context, state, null, StatusCodes.Status501NotImplemented).ConfigureAwait(false);
            return;
        }

        var head = new Http1RequestHead();
        if (!TryDescribe(context.Request, webSocket, model.Config.Limits, head, out var invalid))
        {
            await RefuseAsync(context, state, null, invalid.Status).ConfigureAwait(false);
            return;
        }

        var route = model.Routes.Match(head);
        if (route is null)
        {
            await RefuseAsync(context, state, null, StatusCodes.Status404NotFound).ConfigureAwait(false);
            return;
        }

        route.Metrics.RequestStarted();
        route.Budget.RequestStarted();
        try
        {
            await ForwardAsync(context, state, head, route, webSocket ? connect : null).ConfigureAwait(false);
        }
        finally
        {
            route.Budget.RequestEnded();
        }
    }

    /// <param name="webSocket">Set for a WebSocket opened by extended CONNECT (RFC 8441): it goes upstream as an HTTP/1.1 upgrade.</param>
    private async Task ForwardAsync(HttpContext context, Http2ConnectionState state, Http1RequestHead head, RouteModel route, IHttpExtendedConnectFeature? webSocket)
    {
        var service = route.PickService();
        service.Metrics.Http.RequestStarted();
        var clientAddress = context.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : context.Connection.RemoteIpAddress;
        GeneratedCookie? generated = null;
        var key = service.HashesRequests ? RequestHashKey.Compute(service.Config.Lb.HashKeys, head, clientAddress, out generated) : null;
        var index = key is { } hash ? service.Balancer.Pick(hash) : service.Balancer.Pick();
        if (index < 0)
        {
            service.Metrics.NoneAvailable();
            await RefuseAsync(context, state, route, StatusCodes.Status503ServiceUnavailable, service).ConfigureAwait(false);
            return;
        }

        var started = _tracker.Now;
        // A WebSocket's request body is the session itself: it flows only once the upgrade is accepted.
        var canHaveBody = webSocket is null && (context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? true);
        var retryable = webSocket is null && !canHaveBody && IsIdempotent(context.Request.Method);
        var requestId = $"h2-{Interlocked.Increment(ref _requests):x}";
        var tried = new HashSet<int>();
        var attempts = 0;
        var retries = 0;
        while (true)
        {
            var endpoint = service.Endpoints[index];
            tried.Add(index);
            attempts++;
            endpoint.State.Begin();
            var sentAt = _tracker.Now;
            HttpResponseMessage? response = null;
            int? failureStatus = null;
            var connectFailed = false;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            timeout.CancelAfter(route.Config.Timeout);
            // Kept until the exchange ends: its content may still be streaming the client's body.
            using var request = CreateRequest(context, head, service, endpoint, clientAddress, requestId, canHaveBody, webSocket is not null, out var webSocketKey);
            try
            {
                response = await _invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                endpoint.State.End();
                route.Metrics.Abort();
                service.Metrics.Http.Abort();
                return;
            }
            catch (OperationCanceledException)
            {
                failureStatus = StatusCodes.Status504GatewayTimeout;
            }
            catch (HttpRequestException ex)
            {
                connectFailed = ex.InnerException is SocketException || ex.HttpRequestError == HttpRequestError.ConnectionError;
                failureStatus = connectFailed ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status502BadGateway;
            }

            if (response is null)
            {
                endpoint.State.End();
                service.Health.ReportFailure(endpoint.Health);
                var refusal = failureStatus!.Value;
                if (_throttle.TryLog(route.Config.Name, endpoint.Config.Address, out var more))
                {
                    LogAttemptFailed(_logger, route.Config.Name, service.Config.Name, endpoint.Config.Address, refusal, more);
                }

                // Nothing reached the upstream when the connect failed: any request may go elsewhere.
                var again = connectFailed ? attempts < service.Config.ConnectAttempts : retryable && retries < route.Config.Retry.Attempts && route.Budget.TryStartRetry();
                if (again && !connectFailed)
                {
                    retries++;
                    route.Metrics.Retried();
                    service.Metrics.Http.Retried();
                    route.Budget.RetryEnded();
                }

                if (again && service.Balancer.NextUntried(tried, index) is var next and >= 0)
                {
                    index = next;
                    continue;
                }

                await RefuseAsync(context, state, route, refusal, service).ConfigureAwait(false);
                return;
            }

            using (response)
            {
                // The route's timeout is for the response head; a stream may then run as long as it lasts.
                timeout.CancelAfter(Timeout.Infinite);
                var upstreamLatency = _tracker.Since(sentAt);
                route.Metrics.UpstreamLatency.Record(upstreamLatency);
                service.Metrics.Http.UpstreamLatency.Record(upstreamLatency);
                var status = (int)response.StatusCode;
                if (status >= 500)
                {
                    service.Health.ReportFailure(endpoint.Health);
                }
                else
                {
                    ServiceHealth.ReportSuccess(endpoint.Health);
                }

                if (status == StatusCodes.Status101SwitchingProtocols && (webSocket is null || !IsAcceptOf(response, webSocketKey!)))
                {
                    // Not the handshake that was asked for: nothing of it may reach the client.
                    endpoint.State.End();
                    service.Health.ReportFailure(endpoint.Health);
                    await RefuseAsync(context, state, route, StatusCodes.Status502BadGateway, service).ConfigureAwait(false);
                    return;
                }

                try
                {
                    await (status == StatusCodes.Status101SwitchingProtocols
                        ? TunnelAsync(context, webSocket!, response, generated)
                        : CopyResponseAsync(context, response, generated)).ConfigureAwait(false);
                    route.Metrics.Responded(status);
                    service.Metrics.Http.Responded(status);
                    state.Host.Model.Http?.AccessLog?.Write(new AccessLogEntry(
                        DateTimeOffset.UtcNow,
                        state.Host.Model.Config.Name,
                        route.Config.Name,
                        service.Config.Name,
                        endpoint.Config.Address,
                        clientAddress,
                        context.Request.Method,
                        context.Request.Host.Value ?? string.Empty,
                        $"{context.Request.PathBase}{context.Request.Path}{context.Request.QueryString}",
                        status,
                        context.Request.ContentLength ?? 0,
                        response.Content.Headers.ContentLength ?? 0,
                        _tracker.Since(started).TotalMilliseconds,
                        upstreamLatency.TotalMilliseconds,
                        retries,
                        requestId));
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException)
                {
                    // The response started: only an aborted stream tells the client it is cut.
                    route.Metrics.Abort();
                    service.Metrics.Http.Abort();
                    context.Abort();
                }
                finally
                {
                    endpoint.State.End();
                }

                return;
            }
        }
    }

    /// <summary>The request for the upstream: same method, path and headers, less hop-by-hop ones, plus the forwarding headers.</summary>
    /// <param name="webSocketKey">For a WebSocket, the Sec-WebSocket-Key the upstream must answer; else null.</param>
    private static HttpRequestMessage CreateRequest(HttpContext context, Http1RequestHead head, ServiceModel service, UpstreamEndpoint endpoint, IPAddress? client, string requestId, bool canHaveBody, bool webSocket, out string? webSocketKey)
    {
        var incoming = context.Request;
        var version = webSocket ? HttpVersion.Version11 : service.Config.Http.Version;
        var method = webSocket ? HttpMethod.Get : new HttpMethod(incoming.Method);
        var request = new HttpRequestMessage(method, new Uri($"http://{endpoint.Config.Address}{incoming.PathBase}{incoming.Path}{incoming.QueryString}"))
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        if (canHaveBody)
        {
            request.Content = new StreamingContent(incoming.BodyReader, incoming.ContentLength);
        }

        string? forwardedFor = null;
        string? via = null;
        var hasRequestId = false;
        foreach (var (name, values) in incoming.Headers)
        {
            if (name.StartsWith(':') || HopByHop.Contains(name))
            {
                // TE: trailers is the one TE an HTTP/2 upstream must see: gRPC relies on it.
                if (name.Equals("te", StringComparison.OrdinalIgnoreCase) && version.Major >= 2 && values.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
                {
                    request.Headers.TryAddWithoutValidation("TE", "trailers");
                }

                continue;
            }

            if (name.Equals("x-forwarded-for", StringComparison.OrdinalIgnoreCase))
            {
                forwardedFor = values.ToString();
                continue;
            }

            if (name.Equals("via", StringComparison.OrdinalIgnoreCase))
            {
                via = values.ToString();
                continue;
            }

            hasRequestId |= name.Equals("x-request-id", StringComparison.OrdinalIgnoreCase);
            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        var host = Encoding.Latin1.GetString(head.Host);
        request.Headers.Host = host;
        var address = client?.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{client}]" : client?.ToString();
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", forwardedFor is null ? address : $"{forwardedFor}, {address}");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        request.Headers.TryAddWithoutValidation("Via", via is null ? "2 forwarder" : $"{via}, 2 forwarder");
        if (!hasRequestId)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
        }

        webSocketKey = webSocket ? AddUpgradeHeaders(request) : null;
        return request;
    }

    private static async Task CopyResponseAsync(HttpContext context, HttpResponseMessage response, GeneratedCookie? generated)
    {
        var outgoing = context.Response;
        outgoing.StatusCode = (int)response.StatusCode;
        CopyHeaders(response.Headers, outgoing.Headers);
        CopyHeaders(response.Content.Headers, outgoing.Headers);
        outgoing.Headers.Append("Via", $"{response.Version.Major}.{response.Version.Minor} forwarder");
        if (generated is not null)
        {
            outgoing.Headers.Append("Set-Cookie", generated.SetCookieValue);
        }

        // Streamed as it comes: a gRPC stream's messages must not wait for a buffer to fill.
        await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            // The head goes out now: a streaming response's first message may be long in coming
            // (a gRPC server waiting for the client's), and the client waits for the head first.
            await outgoing.StartAsync(context.RequestAborted).ConfigureAwait(false);
            await outgoing.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            int read;
            while ((read = await body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                await outgoing.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted).ConfigureAwait(false);
                await outgoing.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (response.TrailingHeaders.Any() && context.Features.Get<IHttpResponseTrailersFeature>() is { } trailers)
        {
            foreach (var (name, values) in response.TrailingHeaders)
            {
                trailers.Trailers.Append(name, new StringValues([.. values]));
            }
        }
    }

    private static void CopyHeaders(HttpHeaders from, IHeaderDictionary to)
    {
        foreach (var (name, values) in from.NonValidated)
        {
            if (!HopByHop.Contains(name))
            {
                to.Append(name, new StringValues([.. values]));
            }
        }
    }

    /// <summary>The request as an HTTP/1.1 head, for the route table and the hash keys; false with the status to answer when it cannot be one.</summary>
    /// <param name="webSocket">Described as the HTTP/1.1 upgrade it becomes, so routes and hash keys see a WebSocket the same either way.</param>
    private static bool TryDescribe(HttpRequest request, bool webSocket, Http1Limits limits, Http1RequestHead head, out Http1Error error)
    {
        var text = new StringBuilder();
        text.Append(webSocket ? "GET" : request.Method).Append(' ').Append(request.PathBase).Append(request.Path.HasValue ? request.Path.Value : "/").Append(request.QueryString.Value)
            .Append(" HTTP/1.1\r\nHost: ").Append(request.Host.Value).Append("\r\n");
        if (webSocket)
        {
            text.Append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
        }

        foreach (var (name, values) in request.Headers)
        {
            if (name.StartsWith(':') || name.Equals("host", StringComparison.OrdinalIgnoreCase) || name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var value in values)
            {
                text.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }

        text.Append("\r\n");
        var bytes = Encoding.Latin1.GetBytes(text.ToString());
        if (Http1RequestParser.TryParse(new ReadOnlySequence<byte>(bytes), limits, head, out _, out error) == Http1ParseStatus.Complete)
        {
            return true;
        }

        if (error.Status == 0)
        {
            error = new Http1Error(431, "request head too large");
        }

        return false;
    }

    private static Task RefuseAsync(HttpContext context, Http2ConnectionState state, RouteModel? route, int status, ServiceModel? service = null)
    {
        route?.Metrics.Responded(status);
        service?.Metrics.Http.Responded(status);
        state.Metrics.HttpRefused(status);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync($"{status} {ReasonPhrases(status)}\n");
    }

    private static string ReasonPhrases(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);

    private static bool IsIdempotent(string method)
        => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method) || HttpMethods.IsTrace(method);

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Route {Route}: endpoint {Endpoint} of service {Service} failed over HTTP/2 forwarding; would answer {Status} ({Suppressed} more since the last such line)")]
    private static partial void LogAttemptFailed(ILogger logger, string route, string service, string endpoint, int status, long suppressed);
}
