using System.Buffers;
using System.Net.Http.Headers;
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
                    Http2Failure? failed = null;
                    int status;
                    try
                    {
                        response = await endpoint.Pool.Http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                        status = (int)response.StatusCode;
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
                    {
                        var failure = Http2FailureClassifier.Classify(ex, timeout.IsCancellationRequested, ClientSideOf(context, body, timeout.IsCancellationRequested));
                        if (failure.Kind == Http2FailureKind.ClientGone)
                        {
                            // The client went away or broke its body off: there is nobody to answer.
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            context.Abort();
                            return;
                        }

                        if (failure.Kind == Http2FailureKind.ClientFault)
                        {
                            // The client's doing (too much, or too slow a body): not the endpoint's failure.
                            await RefuseAsync(context, state, route, failure.Status, service).ConfigureAwait(false);
                            return;
                        }

                        if (failure.Dial is { } dial)
                        {
                            service.Metrics.ConnectFailed(dial);
                        }

                        (failed, status) = (failure, failure.Status);
                    }

                    if (failed is { UpstreamAtFault: true } || (failed is null && status >= 500))
                    {
                        service.Health.ReportFailure(endpoint.Health);
                    }
                    else if (failed is null)
                    {
                        ServiceHealth.ReportSuccess(endpoint.Health);
                    }

                    if (failed?.Attempt is not null || (failed is null && webSocket is null && retry.MayRetryStatus(status)))
                    {
                        var next = retry.NextEndpoint(failed?.Attempt ?? AttemptFailure.Status, status, replayable: body is null || !body.Started, service.Balancer, tried, index);
                        if (next >= 0)
                        {
                            response?.Dispose();
                            if (failed?.Attempt != AttemptFailure.Connect)
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

    /// <summary>What the client's side had to do with a failed exchange.</summary>
    /// <param name="timedOut">The route's timeout passed: the client's fault if its body was still awaited then.</param>
    private static ClientSide ClientSideOf(HttpContext context, StreamingContent? body, bool timedOut)
    {
        if (context.RequestAborted.IsCancellationRequested || body?.Fault == ClientBodyFault.Failed)
        {
            return ClientSide.Gone;
        }

        return body?.Fault == ClientBodyFault.TooLarge ? ClientSide.TooLarge
            : timedOut && body is { Completed: false, WaitingOnClient: true } ? ClientSide.Stalled
            : ClientSide.Fine;
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
