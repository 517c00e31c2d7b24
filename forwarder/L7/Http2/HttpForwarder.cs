using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.L7.Upstream;
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
/// YARP way. Routing, hash keys, balancing, health, retries (<see cref="RetryDecision"/>) and
/// the metrics are the HTTP/1.1 path's own: the request is described as an HTTP/1.1 head for
/// them. Bodies stream both ways (request and response at once, for gRPC's bidirectional
/// streams) and response trailers pass through.
/// </summary>
internal sealed partial class HttpForwarder
{
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host",
        "x-forwarded-proto", "x-forwarded-host",
    };

    private readonly ConnectionTracker _tracker;
    private readonly ILogger<HttpForwarder> _logger;
    private readonly LogThrottle _throttle = new();
    private long _requests;

    public HttpForwarder(ConnectionTracker tracker, ILogger<HttpForwarder> logger)
    {
        _tracker = tracker;
        _logger = logger;
    }

    public async Task ForwardAsync(HttpContext context, Http2ConnectionState state)
    {
        if (state.Host.Model.Http is not { } model)
        {
            await RefuseAsync(context, state, null, StatusCodes.Status503ServiceUnavailable).ConfigureAwait(false);
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

        // The :path as the client sent it, normalized as the listener says (as for HTTP/1): what is
        // routed is what goes upstream, byte for byte (Kestrel's decoded, dot-segment-collapsed
        // Path would route one path and send another).
        var target = NormalizeTarget(context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw ? raw : "/", model.Config.PathNormalization);
        var head = new Http1RequestHead();
        if (HasConnectionSpecificField(context.Request.Headers))
        {
            // Malformed in HTTP/2 (RFC 9113 8.2.2). Kestrel refuses Connection and TE itself; the rest would otherwise pass.
            await RefuseAsync(context, state, null, StatusCodes.Status400BadRequest).ConfigureAwait(false);
            return;
        }

        if (HasNonAsciiValue(context.Request.Headers))
        {
            // Header values beyond ASCII cannot go upstream (SocketsHttpHandler refuses them): the client's fault, not the endpoint's.
            await RefuseAsync(context, state, null, StatusCodes.Status400BadRequest).ConfigureAwait(false);
            return;
        }

        if (!TryDescribe(context.Request, target, webSocket, model.Config.Limits, head, out var invalid))
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
        if (model.Config.MaxBodySize < context.Request.ContentLength)
        {
            await RefuseAsync(context, state, route, StatusCodes.Status413PayloadTooLarge).ConfigureAwait(false);
            return;
        }

        route.Budget.RequestStarted();
        try
        {
            await ForwardAsync(context, state, model, target, head, route, webSocket ? connect : null).ConfigureAwait(false);
        }
        finally
        {
            route.Budget.RequestEnded();
        }
    }

    /// <param name="webSocket">Set for a WebSocket opened by extended CONNECT (RFC 8441): it goes upstream as an HTTP/1.1 upgrade.</param>
    private async Task ForwardAsync(HttpContext context, Http2ConnectionState state, HttpListenerModel model, string target, Http1RequestHead head, RouteModel route, IHttpExtendedConnectFeature? webSocket)
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

        if (!UpstreamRequestUri.TryCreate(target, out var uri))
        {
            await RefuseAsync(context, state, route, StatusCodes.Status400BadRequest, service).ConfigureAwait(false);
            return;
        }

        var started = _tracker.Now;
        // A WebSocket's request body is the session itself: it flows only once the upgrade is accepted.
        var canHaveBody = webSocket is null && (context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? true);
        var idempotent = webSocket is null && IsIdempotent(context.Request.Method);
        var retry = new RetryDecision(route.Config.Retry, route.Budget, service.Config.ConnectAttempts, idempotent);
        var requestId = $"h2-{Interlocked.Increment(ref _requests):x}";
        var tried = new HashSet<int>();
        try
        {
            while (true)
            {
                var endpoint = service.Endpoints[index];
                tried.Add(index);
                endpoint.State.Begin();
                try
                {
                    var body = canHaveBody ? new StreamingContent(context.Request.BodyReader, context.Request.ContentLength, model.Config.MaxBodySize) : null;
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                    timeout.CancelAfter(route.Config.Timeout);

                    // Kept until the exchange ends: its content may still be streaming the client's body.
                    using var request = CreateRequest(context, uri, head, service, clientAddress, requestId, body, webSocket is not null, out var webSocketKey);
                    var sentAt = _tracker.Now;
                    HttpResponseMessage? response = null;
                    AttemptFailure? failure = null;
                    int status;
                    try
                    {
                        response = await endpoint.Pool.Http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                        status = (int)response.StatusCode;
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
                    {
                        if (context.RequestAborted.IsCancellationRequested || body?.Fault == ClientBodyFault.Failed)
                        {
                            // The client went away or broke its body off: there is nobody to answer.
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            context.Abort();
                            return;
                        }

                        if (body?.Fault == ClientBodyFault.TooLarge || (timeout.IsCancellationRequested && body is { Completed: false, WaitingOnClient: true }))
                        {
                            // The client's doing (too much, or too slow a body): not the endpoint's failure.
                            await RefuseAsync(context, state, route, body.Fault == ClientBodyFault.TooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status408RequestTimeout, service).ConfigureAwait(false);
                            return;
                        }

                        (failure, status) = Classify(ex, timeout.IsCancellationRequested);
                    }

                    if (failure is not null || status >= 500)
                    {
                        service.Health.ReportFailure(endpoint.Health);
                    }
                    else
                    {
                        ServiceHealth.ReportSuccess(endpoint.Health);
                    }

                    if (failure is not null || (webSocket is null && retry.MayRetryStatus(status)))
                    {
                        var next = retry.NextEndpoint(failure ?? AttemptFailure.Status, status, replayable: body is null || !body.Started, service.Balancer, tried, index);
                        if (next >= 0)
                        {
                            response?.Dispose();
                            if (failure != AttemptFailure.Connect)
                            {
                                route.Metrics.Retried();
                                service.Metrics.Http.Retried();
                            }

                            index = next;
                            continue;
                        }
                    }

                    if (response is null)
                    {
                        if (_throttle.TryLog(route.Config.Name, endpoint.Config.Address, out var more))
                        {
                            LogAttemptFailed(_logger, route.Config.Name, service.Config.Name, endpoint.Config.Address, status, more);
                        }

                        await RefuseAsync(context, state, route, status, service).ConfigureAwait(false);
                        return;
                    }

                    using (response)
                    {
                        // The route's timeout is for the response head; a stream may then run as long as it lasts.
                        timeout.CancelAfter(Timeout.Infinite);
                        var upstreamLatency = _tracker.Since(sentAt);
                        route.Metrics.UpstreamLatency.Record(upstreamLatency);
                        service.Metrics.Http.UpstreamLatency.Record(upstreamLatency);
                        if (status == StatusCodes.Status101SwitchingProtocols && (webSocket is null || !IsAcceptOf(response, webSocketKey!)))
                        {
                            // Not the handshake that was asked for: nothing of it may reach the client.
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
                            model.AccessLog?.Write(new AccessLogEntry(
                                DateTimeOffset.UtcNow,
                                state.Host.Model.Config.Name,
                                route.Config.Name,
                                service.Config.Name,
                                endpoint.Config.Address,
                                clientAddress,
                                context.Request.Method,
                                context.Request.Host.Value ?? string.Empty,
                                target,
                                status,
                                context.Request.ContentLength ?? 0,
                                response.Content.Headers.ContentLength ?? 0,
                                _tracker.Since(started).TotalMilliseconds,
                                upstreamLatency.TotalMilliseconds,
                                retry.Retries,
                                requestId));
                        }
                        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException)
                        {
                            // The response started: only an aborted stream tells the client it is cut.
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            context.Abort();
                        }

                        return;
                    }
                }
                finally
                {
                    endpoint.State.End();
                }
            }
        }
        finally
        {
            retry.Release();
        }
    }

    /// <summary>What a failed send means for the endpoint, and the status the client would get for it.</summary>
    private static (AttemptFailure Failure, int Status) Classify(Exception ex, bool timedOut)
    {
        if (ex is OperationCanceledException && timedOut)
        {
            return (AttemptFailure.Timeout, StatusCodes.Status504GatewayTimeout);
        }

        // A refused or unreachable endpoint, the handler's connect timeout, or a node link that could not open a stream: nothing was sent.
        var connect = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
            || ex.InnerException is SocketException or TimeoutException
            || (ex is OperationCanceledException && ex.InnerException is TimeoutException);
        return connect ? (AttemptFailure.Connect, StatusCodes.Status503ServiceUnavailable) : (AttemptFailure.Reset, StatusCodes.Status502BadGateway);
    }

    /// <summary>The request for the upstream: same method, path and headers, less hop-by-hop ones, plus the forwarding headers.</summary>
    /// <param name="uri">The client's path and query, verbatim (<see cref="UpstreamRequestUri"/>).</param>
    /// <param name="webSocketKey">For a WebSocket, the Sec-WebSocket-Key the upstream must answer; else null.</param>
    private static HttpRequestMessage CreateRequest(HttpContext context, Uri uri, Http1RequestHead head, ServiceModel service, IPAddress? client, string requestId, StreamingContent? body, bool webSocket, out string? webSocketKey)
    {
        var incoming = context.Request;
        var version = webSocket ? HttpVersion.Version11 : service.Config.Http.Version;
        var method = webSocket ? HttpMethod.Get : new HttpMethod(incoming.Method);
        var request = new HttpRequestMessage(method, uri)
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = body,
        };

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
            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values) && body is not null)
            {
                body.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
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
        if (response.Headers.Contains("grpc-status"))
        {
            // A gRPC Trailers-Only response (one HEADERS frame that ends the stream, status in it).
            // Started early, Kestrel would send those headers, then an empty DATA frame to end the
            // stream, and the client, finding no trailers, would report UNKNOWN. Left unstarted
            // with no body, Kestrel ends the stream with the headers, as the upstream did.
            await body.CopyToAsync(Stream.Null, context.RequestAborted).ConfigureAwait(false);
            return;
        }

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
    /// <summary>The target with its path normalized and its query untouched; the same string when nothing changes.</summary>
    private static string NormalizeTarget(string target, PathNormalization mode)
    {
        var queryAt = target.IndexOf('?');
        var path = queryAt < 0 ? target : target[..queryAt];
        var normalized = PathNormalizer.Normalize(path, mode);
        if (ReferenceEquals(normalized, path))
        {
            return target;
        }

        return queryAt < 0 ? normalized : string.Concat(normalized, target.AsSpan(queryAt));
    }

    private static bool TryDescribe(HttpRequest request, string target, bool webSocket, Http1Limits limits, Http1RequestHead head, out Http1Error error)
    {
        var text = new StringBuilder();
        text.Append(webSocket ? "GET" : request.Method).Append(' ').Append(target)
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

    /// <summary>Whether the request carries a field HTTP/2 forbids: a connection-specific one, or TE other than "trailers".</summary>
    private static bool HasConnectionSpecificField(IHeaderDictionary headers)
        => headers.ContainsKey("connection") || headers.ContainsKey("keep-alive") || headers.ContainsKey("proxy-connection")
            || headers.ContainsKey("transfer-encoding") || headers.ContainsKey("upgrade")
            || (headers.TryGetValue("te", out var te) && !string.Equals(te.ToString().Trim(), "trailers", StringComparison.OrdinalIgnoreCase));

    /// <summary>Whether a header value has a character HTTP/2 cannot carry upstream (SocketsHttpHandler sends ASCII only).</summary>
    private static bool HasNonAsciiValue(IHeaderDictionary headers)
    {
        foreach (var (_, values) in headers)
        {
            foreach (var value in values)
            {
                if (value is not null && !Ascii.IsValid(value))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static Task RefuseAsync(HttpContext context, Http2ConnectionState state, RouteModel? route, int status, ServiceModel? service = null)
    {
        route?.Metrics.Responded(status);
        service?.Metrics.Http.Responded(status);
        state.Metrics.HttpRefused(status);
        if (context.Response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }

        if (GrpcStatus.IsGrpc(context.Request))
        {
            GrpcStatus.Write(context.Response, status, $"forwarder: {status} {ReasonPhrases(status)}");
            return Task.CompletedTask;
        }

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
