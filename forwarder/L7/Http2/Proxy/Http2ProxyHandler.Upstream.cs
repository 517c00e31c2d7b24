using System.Buffers;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Server;
using Forwarder.L7.Routing;
using Forwarder.L7.Upstream;
using Forwarder.LoadBalancing.Health;
using Forwarder.Metrics;
using Forwarder.Transports.Diagnostics;

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
                        // DelayInjection builds only: the HTTP/2 arm's stand-in for a slower request path (as Http1ProxySession's for the http listener).
                        InjectedDelay.Apply();
                        upstream = await endpoint.Pool.Http2.OpenStreamAsync(exchange.Upstream, bodiless, timeout, _upstreamWrites).ConfigureAwait(false);
                        upstream.UseBudget(_responseBudget);
                        if (!bodiless)
                        {
                            if (InRead)
                            {
                                // Pumped at the read's end, so a body in the same read goes up in one
                                // synchronous pass and in the same write as the head: no pump left
                                // waiting for the DATA frames, no thread-pool hop to it, no second send.
                                _bodiesAtReadEnd.Add(exchange);
                                await exchange.WaitForBody().ConfigureAwait(false);
                            }

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

    /// <summary>Sends the response's head, body and trailers to the client; the body's length, or -1 when either side cut it.</summary>
    private async ValueTask<long> CopyResponseAsync(Http2ServerStream stream, Http2ClientStream upstream, Http2ProxyExchange exchange, GeneratedCookie? generated)
    {
        CopyResponseHead(upstream, exchange, generated);
        long sent = 0;
        try
        {
            if (upstream.RemoteEnded)
            {
                // The whole response is here (the upstream's read held it, as for most small
                // answers): sent whole when the client's windows take it. Read to its end without
                // consuming; what does not go whole goes the ordinary way below. Only once the
                // upstream has ended: a body still coming would otherwise be read to its end
                // unconsumed, its window never returned.
                System.IO.Pipelines.ReadResult whole;
                while (!(whole = await upstream.ReadBodyAsync().ConfigureAwait(false)).IsCompleted)
                {
                    upstream.AdvanceBody(whole.Buffer, whole.Buffer.Start);
                }

                // Read before TryWriteWhole advances past the buffer (after which it is not to be touched).
                var empty = whole.Buffer.IsEmpty;
                if (TryWriteWhole(stream, upstream, exchange, whole.Buffer) is var length and >= 0)
                {
                    return length;
                }

                if (empty && upstream.ResponseTrailers.Count == 0)
                {
                    // Nothing follows the head (a gRPC Trailers-Only response carries its status in
                    // it): one HEADERS frame with END_STREAM, as the upstream sent, since a client
                    // finding an empty body and no trailers would see no status.
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

            CopyResponseTrailers(upstream, exchange);
            stream.Complete(exchange.ResponseTrailers);
            return sent;
        }
        catch (Exception ex) when (IsExchangeFailure(ex))
        {
            // The upstream reset its stream or its connection ended mid-response: so is the client's
            // stream. Its head came, so it goes first (as when the head went on before the body was
            // read), then the reset: the client sees the response start and be cut, as it was.
            if (!exchange.HeadSent)
            {
                exchange.HeadSent = true;
                stream.WriteHeaders(upstream.Status, exchange.Response);
            }

            stream.Reset(stream.Aborted.IsCancellationRequested ? Http2ErrorCode.Cancel : Http2ErrorCode.InternalError);
            return -1;
        }
    }

    /// <summary>
    /// The upstream's response has ended and its whole <paramref name="body"/> is here (read, not
    /// yet advanced): when small enough and the client's windows take it, head, body and trailers
    /// go to the client in one step (no write per segment, one batch). The body's length (consumed),
    /// or -1 when nothing was sent and it goes the ordinary way (the body left unconsumed).
    /// </summary>
    private static long TryWriteWhole(Http2ServerStream stream, Http2ClientStream upstream, Http2ProxyExchange exchange, ReadOnlySequence<byte> body)
    {
        CopyResponseTrailers(upstream, exchange);
        if (!stream.TryWriteResponse(upstream.Status, exchange.Response, body, exchange.ResponseTrailers))
        {
            // Nothing sent: the ordinary way reads it all again.
            upstream.AdvanceBody(body, body.Start);
            return -1;
        }

        exchange.HeadSent = true;
        var length = body.Length;
        upstream.AdvanceBody(body);
        return length;
    }

    private static void CopyResponseTrailers(Http2ClientStream upstream, Http2ProxyExchange exchange)
    {
        var trailers = upstream.ResponseTrailers;
        exchange.ResponseTrailers.Clear();
        for (var i = 0; i < trailers.Count; i++)
        {
            exchange.ResponseTrailers.Add(trailers.Name(i), trailers.Value(i));
        }
    }
}
