using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Server;
using Forwarder.L7.Routing;
using Forwarder.L7.Upstream;
using Forwarder.LoadBalancing.Health;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Proxy;

/// <content>The exchange with the upstream: attempts, retries, and the response streamed back.</content>
internal sealed partial class Http2ProxyHandler
{
    /// <summary>Times a stream the upstream refused unprocessed goes again to the same endpoint before the next one is tried.</summary>
    private const int MaxResends = 2;

    private async ValueTask ForwardAsync(Http2ServerStream stream, Http2ProxyExchange exchange, HttpListenerModel model, RouteModel route)
    {
        var started = _tracker.Now;
        var head = exchange.Head;
        var service = route.PickService();
        service.Metrics.Http.RequestStarted();
        if (service.Config.Http.Version.Major < 2)
        {
            // Only HTTP/2 is spoken upstream here: a reload made the service HTTP/1.1 while this
            // connection stayed on the native engine. Dialling h2c would fail at every endpoint
            // and be held against them. Refused unprocessed (RFC 9113 8.7) after a GOAWAY, the
            // request is sent again by the client on its next connection, which gets the Kestrel engine.
            _owner.WarnNotHttp2(route.Config.Name, service.Config.Name);
            route.Metrics.Abort();
            service.Metrics.Http.Abort();
            stream.ShutdownConnection();
            stream.Reset(Http2ErrorCode.RefusedStream);
            return;
        }

        GeneratedCookie? generated = null;
        var key = service.HashesRequests ? RequestHashKey.Compute(service.Config.Lb.HashKeys, head, _clientAddress, out generated) : null;
        var index = key is { } hash ? service.Balancer.Pick(hash) : service.Balancer.Pick();
        if (index < 0)
        {
            service.Metrics.NoneAvailable();
            _owner.WarnNoneAvailable(route.Config.Name, service.Config.Name);
            await RefuseAsync(stream, exchange, route, 503, service).ConfigureAwait(false);
            return;
        }

        // Known now only when the request's HEADERS ended the stream; else the pump finds out.
        var bodiless = stream.RemoteClosed;

        // Answered here (so `expect` does not go upstream), as the HTTP/1 front does for an HTTP/2
        // upstream: 100 once the body has somewhere to go (the upstream stream is open); an
        // expectation other than 100-continue was answered 417 when the request was described.
        var expectContinue = !bodiless && head.ExpectContinue;
        var retry = new RetryDecision(route.Config.Retry, route.Budget, service.Config.ConnectAttempts, IsIdempotent(stream));
        var hasRequestId = BuildUpstreamHead(stream, exchange);
        var resends = 0;
        try
        {
            while (true)
            {
                var endpoint = service.Endpoints[index];
                exchange.Tried.Add(index);
                exchange.StartAttempt();
                endpoint.State.Begin();
                Http2ClientStream? upstream = null;
                Task? pump = null;
                try
                {
                    var timeout = exchange.ArmTimeout(stream.Aborted, _tracker.DeadlineAfter(route.Config.Timeout));
                    var sentAt = _tracker.Now;
                    Http2Failure? failed = null;
                    var refused = false;
                    var status = 0;
                    string? cause = null;
                    try
                    {
                        upstream = await endpoint.Pool.Http2.OpenStreamAsync(exchange.Upstream, bodiless, timeout, _upstreamWrites).ConfigureAwait(false);
                        if (!bodiless)
                        {
                            pump = PumpAsync(stream, upstream, exchange, model.Config.MaxBodySize, head.ContentLength, expectContinue);
                            expectContinue = false;
                        }

                        await upstream.ReadResponseHeadAsync().ConfigureAwait(false);
                        status = upstream.Status;
                    }
                    catch (Exception ex) when (IsExchangeFailure(ex))
                    {
                        upstream?.Cancel();
                        await SettleAsync(stream, pump).ConfigureAwait(false);
                        pump = null;
                        var failure = Classify(ex, stream, exchange, exchange.TimedOut, out refused);
                        if (failure.Kind == Http2FailureKind.ClientGone)
                        {
                            route.Metrics.Abort();
                            service.Metrics.Http.Abort();
                            stream.Reset(Http2ErrorCode.Cancel);
                            return;
                        }

                        if (failure.Kind == Http2FailureKind.ClientFault)
                        {
                            await RefuseAsync(stream, exchange, route, failure.Status, service).ConfigureAwait(false);
                            return;
                        }

                        if (failure.Dial is { } dial)
                        {
                            service.Metrics.ConnectFailed(dial);
                            if (dial == ConnectFailure.SettingsTimeout)
                            {
                                cause = "the endpoint took the connection but sent no HTTP/2 SETTINGS in time (not speaking h2c, or stalled)";
                            }
                        }
                        else if (ex is Http2ClientPoolFullException)
                        {
                            service.Metrics.PoolFull();
                            cause = "no room on the endpoint's HTTP/2 connections (all at the server's stream limit, http.maxConnections open) within the route's timeout";
                        }

                        (failed, status) = (failure, failure.Status);
                    }

                    if ((failed is { UpstreamAtFault: true } && !refused) || (failed is null && status >= 500))
                    {
                        service.Health.ReportFailure(endpoint.Health);
                    }
                    else if (failed is null)
                    {
                        ServiceHealth.ReportSuccess(endpoint.Health);
                    }

                    if (refused && resends < MaxResends && (bodiless || !exchange.BodyStarted))
                    {
                        // Not processed (RFC 9113 8.7: REFUSED_STREAM, or above a GOAWAY's last
                        // stream): routine for an upstream that recycles connections, so the same
                        // endpoint takes it again on whatever connection its pool has now, as
                        // SocketsHttpHandler does on the Kestrel path; neither a retry nor a failed connect.
                        resends++;
                        continue;
                    }

                    if (failed?.Attempt is not null || (failed is null && retry.MayRetryStatus(status)))
                    {
                        var next = retry.NextEndpoint(failed?.Attempt ?? AttemptFailure.Status, status, replayable: bodiless || !exchange.BodyStarted, service.Balancer, exchange.Tried, index);
                        if (next >= 0)
                        {
                            if (failed is null)
                            {
                                upstream!.Cancel();
                                await SettleAsync(stream, pump).ConfigureAwait(false);
                                pump = null;
                            }

                            if (failed?.Attempt != AttemptFailure.Connect)
                            {
                                route.Metrics.Retried();
                                service.Metrics.Http.Retried();
                            }

                            index = next;
                            continue;
                        }
                    }

                    if (failed is not null)
                    {
                        _owner.WarnExchangeFailed(route.Config.Name, service.Config.Name, endpoint.Config.Address, cause ?? $"native HTTP/2 exchange failed ({failed.Value.Kind})", status);
                        await RefuseAsync(stream, exchange, route, status, service).ConfigureAwait(false);
                        return;
                    }

                    // The route's timeout is for the response head; a stream may then run as long as it lasts.
                    exchange.StopTimeout();
                    var upstreamLatency = _tracker.Since(sentAt);
                    route.Metrics.UpstreamLatency.Record(upstreamLatency);
                    service.Metrics.Http.UpstreamLatency.Record(upstreamLatency);
                    var sent = await CopyResponseAsync(stream, upstream!, exchange, generated).ConfigureAwait(false);
                    if (sent < 0)
                    {
                        route.Metrics.Abort();
                        service.Metrics.Http.Abort();
                        if (!stream.Aborted.IsCancellationRequested && !exchange.BodyTooLarge && !exchange.BodyMismatch)
                        {
                            // A body the client got wrong cut it, not the upstream.
                            _owner.WarnResponseCut(route.Config.Name, service.Config.Name, endpoint.Config.Address, "stream reset");
                        }

                        return;
                    }

                    route.Metrics.Responded(status);
                    service.Metrics.Http.Responded(status);
                    model.AccessLog?.Write(new AccessLogEntry(
                        DateTimeOffset.UtcNow,
                        _state.Host.Model.Config.Name,
                        route.Config.Name,
                        service.Config.Name,
                        endpoint.Config.Address,
                        _clientAddress,
                        Encoding.ASCII.GetString(stream.Method),
                        Encoding.Latin1.GetString(head.Host),
                        Encoding.Latin1.GetString(head.Target),
                        status,
                        exchange.BodyBytes,
                        sent,
                        _tracker.Since(started).TotalMilliseconds,
                        upstreamLatency.TotalMilliseconds,
                        retry.Retries,
                        hasRequestId ? Encoding.Latin1.GetString(stream.RequestHeaders.Get("x-request-id"u8)) : Encoding.ASCII.GetString(exchange.RequestId, 0, exchange.RequestIdLength)));
                    return;
                }
                finally
                {
                    if (upstream is not null)
                    {
                        if (pump is not null)
                        {
                            // The response is done; a request body still coming has nowhere to go.
                            upstream.Cancel();
                            await SettleAsync(stream, pump).ConfigureAwait(false);
                        }

                        await upstream.DisposeAsync().ConfigureAwait(false);
                    }

                    exchange.DisarmTimeout();
                    endpoint.State.End();
                }
            }
        }
        finally
        {
            retry.Release();
        }
    }

    /// <summary>Stops the request body pump (its read of the client's body, if waiting, is cancelled) and waits for it.</summary>
    private static async ValueTask SettleAsync(Http2ServerStream stream, Task? pump)
    {
        if (pump is null || pump.IsCompleted)
        {
            return;
        }

        stream.RequestBody.CancelPendingRead();
        await pump.ConfigureAwait(false);
    }

    /// <summary>
    /// Streams the client's request body (and trailers) upstream as it comes; never throws. What
    /// it saw is left in <paramref name="exchange"/>: a client that reset its stream, a body past
    /// the listener's maxBodySize (either resets the upstream stream), or the body's end.
    /// </summary>
    private static async Task PumpAsync(Http2ServerStream stream, Http2ClientStream upstream, Http2ProxyExchange exchange, long? maxBodySize, long? contentLength, bool sendContinue)
    {
        var body = stream.RequestBody;
        if (sendContinue)
        {
            stream.WriteHeaders(100);
        }

        while (true)
        {
            System.IO.Pipelines.ReadResult result;
            try
            {
                exchange.WaitingOnClient = true;
                result = await body.ReadAsync().ConfigureAwait(false);
                exchange.WaitingOnClient = false;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                exchange.WaitingOnClient = false;
                exchange.ClientGone = true;
                upstream.Cancel();
                return;
            }

            var buffer = result.Buffer;
            var advanced = false;
            if (result.IsCanceled)
            {
                body.AdvanceTo(buffer.Start);
                return;
            }

            try
            {
                if (!buffer.IsEmpty)
                {
                    exchange.BodyStarted = true;
                    exchange.BodyBytes += buffer.Length;
                    if (exchange.BodyBytes > maxBodySize)
                    {
                        body.AdvanceTo(buffer.Start);
                        exchange.BodyTooLarge = true;
                        upstream.Cancel();
                        return;
                    }

                    if (exchange.BodyBytes > contentLength)
                    {
                        body.AdvanceTo(buffer.Start);
                        exchange.BodyMismatch = true;
                        upstream.Cancel();
                        return;
                    }

                    foreach (var segment in buffer)
                    {
                        await upstream.WriteBodyAsync(segment).ConfigureAwait(false);
                    }
                }

                body.AdvanceTo(buffer.End);
                advanced = true;
                if (result.IsCompleted)
                {
                    if (exchange.BodyBytes < contentLength)
                    {
                        // Ended short of the declared length: not sent as a complete request.
                        exchange.BodyMismatch = true;
                        upstream.Cancel();
                        return;
                    }

                    var trailers = stream.RequestTrailers;
                    for (var i = 0; i < trailers.Count; i++)
                    {
                        exchange.RequestTrailers.Add(trailers.Name(i), trailers.Value(i));
                    }

                    await upstream.EndRequestAsync(exchange.RequestTrailers).ConfigureAwait(false);
                    exchange.BodyDone = true;
                    return;
                }
            }
            catch (Exception ex) when (IsExchangeFailure(ex))
            {
                // The upstream stream failed: the response side reports it. The read is ended
                // (nothing consumed), or the next attempt's read would throw "already reading".
                if (!advanced)
                {
                    body.AdvanceTo(buffer.Start);
                }

                return;
            }
        }
    }

    /// <summary>Sends the response's head, body and trailers to the client; the body's length, or -1 when either side cut it.</summary>
    private async ValueTask<long> CopyResponseAsync(Http2ServerStream stream, Http2ClientStream upstream, Http2ProxyExchange exchange, GeneratedCookie? generated)
    {
        CopyResponseHead(upstream, exchange, generated);
        long sent = 0;
        try
        {
            if (upstream.RemoteEnded)
            {
                // Perhaps nothing follows the head (a gRPC Trailers-Only response carries its
                // status in it): then one HEADERS frame with END_STREAM, as the upstream sent,
                // since a client finding an empty body and no trailers would see no status.
                // Looked at without consuming: anything there goes the ordinary way below.
                // Only once the upstream has ended: a head with grpc-status and a body still
                // coming would otherwise be read to its end unconsumed, its window never returned.
                System.IO.Pipelines.ReadResult peek;
                do
                {
                    peek = await upstream.ReadBodyAsync().ConfigureAwait(false);
                    upstream.AdvanceBody(peek.Buffer, peek.Buffer.Start);
                }
                while (!peek.IsCompleted);

                if (peek.Buffer.IsEmpty && upstream.ResponseTrailers.Count == 0)
                {
                    exchange.HeadSent = true;
                    stream.WriteHeaders(upstream.Status, exchange.Response, endStream: true);
                    return 0;
                }
            }

            exchange.HeadSent = true;
            stream.WriteHeaders(upstream.Status, exchange.Response);
            while (true)
            {
                var result = await upstream.ReadBodyAsync().ConfigureAwait(false);
                foreach (var segment in result.Buffer)
                {
                    if (!await stream.WriteAsync(segment).ConfigureAwait(false))
                    {
                        // The client reset its stream: the upstream's is reset too.
                        upstream.Cancel();
                        return -1;
                    }
                }

                sent += result.Buffer.Length;
                upstream.AdvanceBody(result.Buffer);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            var trailers = upstream.ResponseTrailers;
            exchange.ResponseTrailers.Clear();
            for (var i = 0; i < trailers.Count; i++)
            {
                exchange.ResponseTrailers.Add(trailers.Name(i), trailers.Value(i));
            }

            stream.Complete(exchange.ResponseTrailers);
            return sent;
        }
        catch (Exception ex) when (IsExchangeFailure(ex))
        {
            // The upstream reset its stream or its connection ended mid-response: so is the client's stream.
            stream.Reset(stream.Aborted.IsCancellationRequested ? Http2ErrorCode.Cancel : Http2ErrorCode.InternalError);
            return -1;
        }
    }

    /// <summary>The response head for the client in <see cref="Http2ProxyExchange.Response"/>.</summary>
    private static void CopyResponseHead(Http2ClientStream upstream, Http2ProxyExchange exchange, GeneratedCookie? generated)
    {
        var fields = exchange.Response;
        fields.Clear();
        var headers = upstream.ResponseHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var name = headers.Name(i);
            if (name.IsEmpty || name[0] == (byte)':' || IsConnectionSpecific(name))
            {
                continue;
            }

            fields.Add(name, headers.Value(i));
        }

        fields.Add("via"u8, "2 forwarder"u8);
        if (generated is not null)
        {
            fields.Add("set-cookie"u8, Encoding.Latin1.GetBytes(generated.SetCookieValue));
        }
    }

    private static bool IsConnectionSpecific(ReadOnlySpan<byte> name)
        => name.SequenceEqual("connection"u8) || name.SequenceEqual("keep-alive"u8) || name.SequenceEqual("proxy-connection"u8)
            || name.SequenceEqual("transfer-encoding"u8) || name.SequenceEqual("upgrade"u8);

    /// <summary>
    /// The upstream's request head in <see cref="Http2ProxyExchange.Upstream"/>: the routed
    /// (normalized) target and host, the client's fields less hop-by-hop ones, and the
    /// forwarding headers; true when the client sent its own X-Request-Id.
    /// </summary>
    private bool BuildUpstreamHead(Http2ServerStream stream, Http2ProxyExchange exchange)
    {
        var head = exchange.Head;
        var list = exchange.Upstream;
        list.Clear();
        list.Add(":method"u8, stream.Method);
        list.Add(":scheme"u8, "http"u8);
        list.Add(":authority"u8, head.Host);
        list.Add(":path"u8, head.Target);
        var fields = stream.RequestHeaders;
        var joined = exchange.Joined;
        joined.ResetWrittenCount();
        var hasRequestId = false;
        for (var i = 0; i < fields.Count; i++)
        {
            var name = fields.Name(i);
            if (name[0] == (byte)':' || name.SequenceEqual("host"u8) || name.SequenceEqual("x-forwarded-proto"u8) || name.SequenceEqual("x-forwarded-host"u8)
                || name.SequenceEqual("via"u8) || name.SequenceEqual("expect"u8))
            {
                continue;
            }

            if (name.SequenceEqual("x-forwarded-for"u8))
            {
                joined.Write(fields.Value(i));
                joined.Write(", "u8);
                continue;
            }

            hasRequestId |= name.SequenceEqual("x-request-id"u8);
            list.Add(name, name.SequenceEqual("te"u8) ? "trailers"u8 : fields.Value(i));
        }

        joined.Write(_clientAddressText);
        list.Add("x-forwarded-for"u8, joined.WrittenSpan);
        list.Add("x-forwarded-proto"u8, _scheme);
        list.Add("x-forwarded-host"u8, head.Host);
        AddVia(stream, exchange);
        if (!hasRequestId)
        {
            NewRequestId(exchange);
            list.Add("x-request-id"u8, exchange.RequestId.AsSpan(0, exchange.RequestIdLength));
        }

        return hasRequestId;
    }

    /// <summary>Via: the client's (all its fields, in order) with this hop added.</summary>
    private static void AddVia(Http2ServerStream stream, Http2ProxyExchange exchange)
    {
        var fields = stream.RequestHeaders;
        var joined = exchange.Joined;
        joined.ResetWrittenCount();
        for (var i = 0; i < fields.Count; i++)
        {
            if (fields.Name(i).SequenceEqual("via"u8))
            {
                joined.Write(fields.Value(i));
                joined.Write(", "u8);
            }
        }

        joined.Write("2 forwarder"u8);
        exchange.Upstream.Add("via"u8, joined.WrittenSpan);
    }

    private static bool IsExchangeFailure(Exception ex)
        => ex is Http2ClientException or Http2ClientNoStreamsException or OperationCanceledException or IOException or SocketException or ConnectionResetException
            or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException;

    /// <summary>
    /// Whose fault a failed attempt was, as <see cref="Http2FailureClassifier"/> says for
    /// SocketsHttpHandler's: the client's side first, then a dial that failed, the route's
    /// timeout, and anything else a reset of a request already sent. A stream the upstream
    /// refused unprocessed (REFUSED_STREAM, above a GOAWAY's last stream) is <paramref name="refused"/>:
    /// health is not told, it goes again to the same endpoint, and past <see cref="MaxResends"/>
    /// counts as a failed connect (any request may go elsewhere).
    /// </summary>
    private static Http2Failure Classify(Exception ex, Http2ServerStream stream, Http2ProxyExchange exchange, bool timedOut, out bool refused)
    {
        refused = false;
        if (stream.Aborted.IsCancellationRequested || exchange.ClientGone)
        {
            return new(Http2FailureKind.ClientGone, 0);
        }

        if (exchange.BodyTooLarge)
        {
            return new(Http2FailureKind.ClientFault, 413);
        }

        if (exchange.BodyMismatch)
        {
            return new(Http2FailureKind.ClientFault, 400);
        }

        if (Find<SocketException>(ex) is { } socket)
        {
            var dial = UpstreamConnector.Classify(socket.SocketErrorCode);
            return new(dial == ConnectFailure.Local ? Http2FailureKind.LocalConnect : Http2FailureKind.Connect, 503, dial);
        }

        if (ex is ObjectDisposedException { ObjectName: var disposed } && (disposed == typeof(Http2ClientPool).FullName || disposed == typeof(UpstreamConnectionPool).FullName))
        {
            // A reload closed the endpoint's pool under this request: nothing the endpoint did.
            return new(Http2FailureKind.LocalConnect, 503);
        }

        if (ex is Http2ClientNoStreamsException)
        {
            // SETTINGS_MAX_CONCURRENT_STREAMS 0: the endpoint takes nothing, like a refused connect;
            // another endpoint may, and outlier detection must hear of it or it stays a black hole.
            return new(Http2FailureKind.Connect, 503, ConnectFailure.Refused);
        }

        if (ex is Http2ClientPoolFullException)
        {
            // The wait was for this node's own connections (http.maxConnections): no other
            // endpoint would do better for a request that timed out, and this one did nothing wrong.
            return new(Http2FailureKind.LocalConnect, 503);
        }

        if (timedOut)
        {
            return exchange.WaitingOnClient && !exchange.BodyDone ? new(Http2FailureKind.ClientFault, 408) : new(Http2FailureKind.Timeout, 504);
        }

        if (ex is Http2ClientException client)
        {
            if (client.CanRetry)
            {
                refused = true;
                return new(Http2FailureKind.Connect, 503);
            }

            if (client.Code is Http2ErrorCode.ConnectError or Http2ErrorCode.Http11Required)
            {
                return new(Http2FailureKind.Connect, 503, client.Code != Http2ErrorCode.ConnectError ? ConnectFailure.Other : client.SettingsTimedOut ? ConnectFailure.SettingsTimeout : ConnectFailure.Timeout);
            }
        }

        return new(Http2FailureKind.Reset, 502);
    }

    private static T? Find<T>(Exception ex)
        where T : Exception
    {
        for (Exception? inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is T found)
            {
                return found;
            }
        }

        return null;
    }
}
