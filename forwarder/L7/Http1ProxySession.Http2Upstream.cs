using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.L7.Upstream;
using Forwarder.LoadBalancing.Health;
using Forwarder.Runtime;

namespace Forwarder.L7;

/// <content>
/// HTTP/1.1 clients of a service whose upstreams speak HTTP/2 (<c>http.version: "2"</c>): the
/// request goes over the shared <see cref="SocketsHttpHandler"/> as HTTP/2 (a chunked body
/// de-chunked on the way), and the response comes back as HTTP/1.1 with Content-Length when the
/// upstream gave one, else chunked (or until close, for an HTTP/1.0 client).
/// </content>
internal sealed partial class Http1ProxySession
{
    private static readonly HashSet<string> NotForwardedToHttp2 = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host", "expect",
        "content-length", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-for", "via",
    };

    /// <summary>Forwards the parsed request over HTTP/2; true when the client connection stays open for the next.</summary>
    private async ValueTask<bool> ForwardOverHttp2Async(HttpListenerModel model, RouteModel route, ServiceModel service, int index, GeneratedCookie? generated, long started)
    {
        var requestId = NextRequestId();
        if (!UpstreamRequestUri.TryCreate(OriginForm(_request.Target), out var uri) || HasNonAsciiValue())
        {
            // A target HTTP/2 cannot carry as :path (asterisk-form), or a header value it cannot carry: the client's request, not the upstream, is at fault.
            await RefuseAsync(model, route, 400, "request cannot go upstream over HTTP/2", started, service).ConfigureAwait(false);
            return false;
        }

        var retry = new RetryDecision(route.Config.Retry, route.Budget, service.Config.ConnectAttempts, IsIdempotent(_request.Method));
        _tried.Clear();
        try
        {
            while (true)
            {
                var endpoint = service.Endpoints[index];
                _tried.Add(index);
                endpoint.State.Begin();
                try
                {
                    var body = _request.HasBody ? new ClientBodyContent(this, model) : null;
                    await using var deadline = new Http2AttemptDeadline(this, model, route, body);
                    using var request = CreateHttp2Request(uri, requestId, body);
                    HttpResponseMessage? response = null;
                    Http2Failure? failed = null;
                    int status;
                    try
                    {
                        response = await endpoint.Pool.Http.SendAsync(request, deadline.Token).ConfigureAwait(false);
                        deadline.Stop();
                        status = (int)response.StatusCode;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        deadline.Stop();

                        // Whatever happens next reads the client connection again: the body must have stopped.
                        await SettleClientBodyAsync(body).ConfigureAwait(false);
                        var side = ClientSideOf(body, deadline.Passed);
                        var failure = Http2FailureClassifier.Classify(ex, deadline.Passed == Http2Blame.Upstream, side);
                        if (failure.Kind == Http2FailureKind.ClientGone)
                        {
                            // The client left: there is nobody to answer.
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            return false;
                        }

                        if (failure.Kind == Http2FailureKind.ClientFault)
                        {
                            // Too large, malformed or stalled: the client's doing, never charged to the endpoint.
                            await RefuseAsync(model, route, failure.Status, $"request body {side}", started, service, endpoint, retry.Retries).ConfigureAwait(false);
                            return false;
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

                    if (failed?.Attempt is not null || (failed is null && retry.MayRetryStatus(status)))
                    {
                        // A body already on its way cannot be sent again; a connection that failed took none of it.
                        var next = retry.NextEndpoint(failed?.Attempt ?? AttemptFailure.Status, status, replayable: body is null || !body.Started, service.Balancer, _tried, index);
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
                        _handler.WarnExchangeFailed(route.Config.Name, service.Config.Name, endpoint.Config.Address, $"HTTP/2 exchange failed ({failed!.Value.Kind})", status);
                        await RefuseAsync(model, route, status, "HTTP/2 exchange failed", started, service, endpoint, retry.Retries).ConfigureAwait(false);
                        return false;
                    }

                    using (response)
                    {
                        // The upstream's latency, from when it had the whole request: not the client's upload time.
                        var upstreamLatency = _tracker.Since(deadline.RequestSentAt);
                        route.Metrics.UpstreamLatency.Record(upstreamLatency);
                        service.Metrics.Http.UpstreamLatency.Record(upstreamLatency);
                        var open = await CopyHttp2ResponseAsync(model, route, service, endpoint, response, generated, started, upstreamLatency.TotalMilliseconds, retry.Retries, requestId).ConfigureAwait(false);
                        return await SettleClientBodyAsync(body).ConfigureAwait(false) && open;
                    }
                }
                finally
                {
                    // Every way out of an attempt, exceptions included, gives its in-flight unit back.
                    endpoint.State.End();
                }
            }
        }
        finally
        {
            retry.Release();
        }
    }

    /// <summary>What the client's side had to do with a failed HTTP/2 exchange.</summary>
    private ClientSide ClientSideOf(ClientBodyContent? body, Http2Blame passed)
    {
        if (body?.Outcome is BodyOutcome.TooLarge)
        {
            return ClientSide.TooLarge;
        }

        if (body?.Outcome is BodyOutcome.Invalid)
        {
            return ClientSide.Invalid;
        }

        if (_client.Client.ConnectionClosed.IsCancellationRequested || body?.Outcome is BodyOutcome.Truncated)
        {
            return ClientSide.Gone;
        }

        return passed == Http2Blame.Client ? ClientSide.Stalled : ClientSide.Fine;
    }

    /// <summary>The path and query of a target: itself in origin form, the part after the authority in absolute form (whose authority is already the Host).</summary>
    private static string OriginForm(ReadOnlySpan<byte> target)
    {
        if (target.IsEmpty || target[0] == (byte)'/' || target[0] == (byte)'*')
        {
            return Encoding.Latin1.GetString(target);
        }

        var authority = target.IndexOf("://"u8);
        var rest = authority < 0 ? target : target[(authority + 3)..];
        var path = rest.IndexOfAny((byte)'/', (byte)'?');
        return path < 0 ? "/" : rest[path] == (byte)'?' ? "/" + Encoding.Latin1.GetString(rest[path..]) : Encoding.Latin1.GetString(rest[path..]);
    }

    /// <summary>Whether a header value has a byte beyond ASCII: HTTP/1.1 tolerates them (obs-text), the HTTP/2 upstream request cannot carry them.</summary>
    private bool HasNonAsciiValue()
    {
        for (var i = 0; i < _request.HeaderCount; i++)
        {
            if (!Ascii.IsValid(_request.HeaderValue(i)))
            {
                return true;
            }
        }

        return false;
    }

    private HttpRequestMessage CreateHttp2Request(Uri uri, RequestId requestId, ClientBodyContent? body)
    {
        var request = new HttpRequestMessage(new HttpMethod(Encoding.ASCII.GetString(_request.Method)), uri)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = body,
        };

        string? forwardedFor = null;
        string? via = null;
        var hasRequestId = false;
        var connection = _request["connection"u8];
        for (var i = 0; i < _request.HeaderCount; i++)
        {
            var name = Encoding.Latin1.GetString(_request.HeaderName(i));
            var value = Encoding.Latin1.GetString(_request.HeaderValue(i));
            if (name.Equals("x-forwarded-for", StringComparison.OrdinalIgnoreCase))
            {
                forwardedFor = forwardedFor is null ? value : $"{forwardedFor}, {value}";
            }
            else if (name.Equals("via", StringComparison.OrdinalIgnoreCase))
            {
                via = via is null ? value : $"{via}, {value}";
            }
            else if (name.Equals("te", StringComparison.OrdinalIgnoreCase) && value.Contains("trailers", StringComparison.OrdinalIgnoreCase))
            {
                // The one TE HTTP/2 allows, and the one gRPC needs.
                request.Headers.TryAddWithoutValidation("TE", "trailers");
            }

            if (NotForwardedToHttp2.Contains(name) || IsListedIn(connection, _request.HeaderName(i)))
            {
                continue;
            }

            hasRequestId |= name.Equals("x-request-id", StringComparison.OrdinalIgnoreCase);
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                body?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        var host = Encoding.Latin1.GetString(_request.Host);
        var client = _clientAddress?.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{_clientAddress}]" : _clientAddress?.ToString();
        request.Headers.Host = host;
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", forwardedFor is null ? client : $"{forwardedFor}, {client}");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", _scheme);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        request.Headers.TryAddWithoutValidation("Via", via is null ? "1.1 forwarder" : $"{via}, 1.1 forwarder");
        if (!hasRequestId)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", requestId.ToString());
        }

        return request;
    }

    private static bool IsListedIn(ReadOnlySpan<byte> connection, ReadOnlySpan<byte> name)
    {
        foreach (var token in new Http1Fields.TokenList(connection))
        {
            if (System.Text.Ascii.EqualsIgnoreCase(token, name))
            {
                return true;
            }
        }

        return false;
    }
}
