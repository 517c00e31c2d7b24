using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
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
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.WebUtilities;

namespace Forwarder.L7;

/// <content>
/// HTTP/1.1 clients of a service whose upstreams speak HTTP/2 (<c>http.version: "2"</c>): the
/// request goes over the shared <see cref="SocketsHttpHandler"/> as HTTP/2 (a chunked body
/// de-chunked on the way), and the response comes back as HTTP/1.1 with Content-Length when the
/// upstream gave one, else chunked (or until close, for an HTTP/1.0 client).
/// </content>
internal sealed partial class Http1ProxySession
{
    private const int Http2BodyBufferSize = 16 * 1024;

    private static readonly HashSet<string> NotForwardedToHttp2 = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host", "expect",
        "content-length", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-for", "via",
    };

    private static readonly HashSet<string> NotForwardedToHttp1 = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "content-length",
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
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_client.Client.ConnectionClosed);
                    timeout.CancelAfter(route.Config.Timeout);
                    var body = _request.HasBody ? new ClientBodyContent(this, model) : null;
                    using var request = CreateHttp2Request(uri, requestId, body);
                    var sentAt = _tracker.Now;
                    HttpResponseMessage? response = null;
                    AttemptFailure? failure = null;
                    int status;
                    try
                    {
                        response = await endpoint.Pool.Http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                        status = (int)response.StatusCode;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        // Whatever happens next reads the client connection again: the body must have stopped.
                        await SettleClientBodyAsync(body).ConfigureAwait(false);
                        if (body?.Outcome is BodyOutcome.Invalid or BodyOutcome.TooLarge)
                        {
                            await RefuseAsync(model, route, body.Outcome == BodyOutcome.TooLarge ? 413 : 400, $"request body {body.Outcome}", started, service, endpoint, retry.Retries).ConfigureAwait(false);
                            return false;
                        }

                        if (_client.Client.ConnectionClosed.IsCancellationRequested || body?.Outcome is BodyOutcome.Truncated)
                        {
                            // The client left: there is nobody to answer.
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            return false;
                        }

                        var connectFailed = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                            || ex.InnerException is SocketException or TimeoutException
                            || (ex is OperationCanceledException && !timeout.IsCancellationRequested && ex.InnerException is TimeoutException);
                        failure = connectFailed ? AttemptFailure.Connect : timeout.IsCancellationRequested ? AttemptFailure.Timeout : AttemptFailure.Reset;
                        status = failure == AttemptFailure.Timeout ? 504 : connectFailed ? 503 : 502;
                    }

                    var upstreamLatency = _tracker.Since(sentAt);
                    if (failure is not null || status >= 500)
                    {
                        service.Health.ReportFailure(endpoint.Health);
                    }
                    else
                    {
                        ServiceHealth.ReportSuccess(endpoint.Health);
                    }

                    if (failure is not null || retry.MayRetryStatus(status))
                    {
                        // A body already on its way cannot be sent again; a connection that failed took none of it.
                        var next = retry.NextEndpoint(failure ?? AttemptFailure.Status, status, replayable: body is null || !body.Started, service.Balancer, _tried, index);
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
                        _handler.WarnExchangeFailed(route.Config.Name, service.Config.Name, endpoint.Config.Address, "HTTP/2 exchange failed", status);
                        await RefuseAsync(model, route, status, "HTTP/2 exchange failed", started, service, endpoint, retry.Retries).ConfigureAwait(false);
                        return false;
                    }

                    using (response)
                    {
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

    /// <summary>Writes the response as HTTP/1.1 and streams its body; true when the connection stays open.</summary>
    private async ValueTask<bool> CopyHttp2ResponseAsync(HttpListenerModel model, RouteModel route, ServiceModel service, UpstreamEndpoint endpoint, HttpResponseMessage response, GeneratedCookie? generated, long started, double upstreamMilliseconds, int retries, RequestId requestId)
    {
        var status = (int)response.StatusCode;
        var bodiless = _request.Method.SequenceEqual("HEAD"u8) || status is 204 or 304 || status < 200;
        var length = response.Content.Headers.ContentLength;
        var chunked = !bodiless && length is null && _request.Version != Http1Version.Http10;
        var closeAfter = !_request.KeepAlive || (!bodiless && length is null && !chunked) || _stopping.IsCancellationRequested;

        var head = new StringBuilder(256);
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n");
        AppendHeaders(head, response.Headers);
        AppendHeaders(head, response.Content.Headers);
        if (length is { } known && (!bodiless || _request.Method.SequenceEqual("HEAD"u8)))
        {
            head.Append(CultureInfo.InvariantCulture, $"Content-Length: {known}\r\n");
        }

        head.Append(chunked ? "Transfer-Encoding: chunked\r\n" : string.Empty)
            .Append(closeAfter ? "Connection: close\r\n" : _request.Version == Http1Version.Http10 ? "Connection: keep-alive\r\n" : string.Empty)
            .Append(generated is null ? string.Empty : $"Set-Cookie: {generated.SetCookieValue}\r\n")
            .Append("Via: 2 forwarder\r\n\r\n");
        var headBytes = Encoding.Latin1.GetBytes(head.ToString());
        _output.Write(headBytes);
        long sent = headBytes.Length;

        var complete = true;
        if (!bodiless)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(Http2BodyBufferSize);
            try
            {
                _client.IdleTimeout = route.Config.Timeout;
                await using var stream = await response.Content.ReadAsStreamAsync(_client.Client.ConnectionClosed).ConfigureAwait(false);
                int read;
                while ((read = await stream.ReadAsync(buffer, _client.Client.ConnectionClosed).ConfigureAwait(false)) > 0)
                {
                    sent += WriteBodyPart(buffer.AsSpan(0, read), chunked);
                    if ((await _output.FlushAsync().ConfigureAwait(false)).IsCompleted)
                    {
                        complete = false;
                        break;
                    }
                }

                if (complete && chunked)
                {
                    _output.Write("0\r\n\r\n"u8);
                    sent += 5;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                complete = false;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
                _client.IdleTimeout = TimeSpan.Zero;
            }
        }

        route.Metrics.Responded(status);
        service.Metrics.Http.Responded(status);
        _listenerMetrics.AddSent(sent);
        _listenerMetrics.AddReceived(_request.Bytes.Length + _requestBody.Forwarded);
        if (!complete)
        {
            // Part of the response is out: only a reset tells the client the rest is missing.
            _handler.WarnResponseCut(route.Config.Name, service.Config.Name, endpoint.Config.Address, "HTTP/2 response broke");
            route.Metrics.Abort();
            service.Metrics.Http.Abort();
            service.Health.ReportFailure(endpoint.Health);
            if (_client.Client.Features.Get<IConnectionResetFeature>() is { } reset)
            {
                reset.Reset();
            }
            else
            {
                _client.Client.Abort(new ConnectionAbortedException("The upstream failed mid-response."));
            }
        }

        Log(model, route, service, endpoint, status, sent, started, upstreamMilliseconds, retries, requestId);
        var flushed = await _output.FlushAsync().ConfigureAwait(false);
        return complete && !closeAfter && !flushed.IsCompleted;
    }

    /// <summary>
    /// Waits until nothing reads the client's connection for the body any more (the upstream may
    /// have answered without taking all of it); true when the body was read whole, so the next
    /// request starts where this one ended.
    /// </summary>
    private async ValueTask<bool> SettleClientBodyAsync(ClientBodyContent? body)
    {
        if (body is null)
        {
            return true;
        }

        if (body.Started && body.Outcome is null)
        {
            _input.CancelPendingRead();
            await body.Finished.ConfigureAwait(false);
        }

        return body.Outcome == BodyOutcome.Complete;
    }

    private int WriteBodyPart(ReadOnlySpan<byte> data, bool chunked)
    {
        if (!chunked)
        {
            _output.Write(data);
            return data.Length;
        }

        Span<byte> size = stackalloc byte[12];
        data.Length.TryFormat(size, out var digits, "x", CultureInfo.InvariantCulture);
        "\r\n"u8.CopyTo(size[digits..]);
        _output.Write(size[..(digits + 2)]);
        _output.Write(data);
        _output.Write("\r\n"u8);
        return digits + 4 + data.Length;
    }

    private static void AppendHeaders(StringBuilder head, HttpHeaders headers)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            if (NotForwardedToHttp1.Contains(name))
            {
                continue;
            }

            foreach (var value in values)
            {
                head.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }
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

    /// <summary>
    /// The client's body as the HTTP/2 request's content: streamed from the connection as the
    /// handler asks for it, de-chunked, within the listener's size limit. Sends the client its
    /// 100 Continue first when it asked to wait for one.
    /// </summary>
    private sealed class ClientBodyContent(Http1ProxySession session, HttpListenerModel model) : HttpContent
    {
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when the body stopped being read from the client, however that ended.</summary>
        public Task Finished => _finished.Task;

        /// <summary>True once the handler began to read the body: from then on it cannot be sent again.</summary>
        public bool Started { get; private set; }

        /// <summary>How forwarding the body ended; null until it did.</summary>
        public BodyOutcome? Outcome { get; private set; }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            Started = true;
            var request = session._request;
            try
            {
                if (request.ExpectContinue)
                {
                    session._output.Write("HTTP/1.1 100 Continue\r\n\r\n"u8);
                    await session._output.FlushAsync().ConfigureAwait(false);
                }

                var target = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
                try
                {
                    Outcome = await session._requestBody.ForwardAsync(session._input, target, RequestFraming(request), request.ContentLength ?? 0, model.Config.MaxBodySize, flushLast: true, dechunk: true).ConfigureAwait(false);
                }
                finally
                {
                    await target.CompleteAsync().ConfigureAwait(false);
                }
            }
            catch (Exception) when (Outcome is null)
            {
                Outcome = BodyOutcome.TargetClosed;
                throw;
            }
            finally
            {
                _finished.TrySetResult();
            }

            if (Outcome != BodyOutcome.Complete)
            {
                throw new IOException($"The client's request body did not arrive whole ({Outcome}).");
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = session._request.ContentLength ?? 0;
            return !session._request.Chunked && session._request.ContentLength is not null;
        }
    }
}
