using System.IO.Pipelines;
using System.Net;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.L7;

/// <summary>
/// One client connection of an http listener, request after request: read and validate the
/// head, route it, pick an endpoint of the route's service, send the head and stream the body
/// on a pooled upstream connection, then stream the response back and return the upstream
/// connection to its pool if the exchange left it clean. Anything the proxy refuses gets its
/// own error response and closes the connection; an upstream that fails before its response
/// head gets 502/503/504 (or a retry), one that fails after it gets the client connection reset,
/// so the client never takes a cut response for a whole one.
/// </summary>
internal sealed partial class Http1ProxySession
{
    /// <summary>How long a refused client may go on sending before the connection is closed under it.</summary>
    private static readonly TimeSpan LingerTimeout = TimeSpan.FromSeconds(2);

    private readonly Http1ProxyHandler _handler;
    private readonly ConnectionTracker _tracker;
    private readonly ClientConnection _client;
    private readonly IListenerModelSource _host;
    private readonly ListenerMetrics _listenerMetrics;
    private readonly CancellationToken _stopping;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IPAddress? _clientAddress;
    private readonly string _scheme;
    private readonly Http1RequestHead _request = new();
    private readonly Http1ResponseHead _response = new();
    private readonly Http1BodyForwarder _requestBody;
    private readonly Http1BodyForwarder _responseBody;
    private readonly HashSet<int> _tried = [];
    private readonly Exchange _exchange;
    private ConnectionContext? _upstream;
    private volatile bool _idle;
    private int _requestCount;

    public Http1ProxySession(Http1ProxyHandler handler, ClientConnection client, IListenerModelSource host, ListenerMetrics listenerMetrics, CancellationToken stopping)
    {
        _handler = handler;
        _tracker = handler.Tracker;
        _client = client;
        _host = host;
        _listenerMetrics = listenerMetrics;
        _stopping = stopping;
        _input = client.Client.Transport.Input;
        _output = client.Client.Transport.Output;
        _scheme = client.Client.Features.Get<ITlsConnectionFeature>() is null ? "http" : "https";
        _clientAddress = (client.Client.RemoteEndPoint as IPEndPoint)?.Address is { } address && address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : (client.Client.RemoteEndPoint as IPEndPoint)?.Address;
        _requestBody = new Http1BodyForwarder(client, _tracker);
        _responseBody = new Http1BodyForwarder(client, _tracker);
        _exchange = new Exchange(this);
    }

    /// <summary>What one read of a response head came to.</summary>
    private enum ResponseHeadStep
    {
        NeedMore,

        /// <summary>An interim (1xx) response, written to the client and to be flushed before reading on.</summary>
        Interim,

        /// <summary>The final head arrived, or the exchange failed.</summary>
        Done,
    }

    /// <summary>Why an exchange with an upstream ended before a usable response head.</summary>
    private enum ExchangeFailure
    {
        None,

        /// <summary>The connection closed or reset before a response head.</summary>
        Reset,

        /// <summary>No response head within the route's timeout.</summary>
        Timeout,

        /// <summary>A response head that does not parse, or a 101 nobody asked for.</summary>
        BadResponse,

        /// <summary>The client's body broke (bad chunk, too large, client gone) while it was being sent.</summary>
        ClientBody,

        /// <summary>The client stopped sending its body for longer than the listener's bodyTimeout.</summary>
        ClientStalled,
    }

    /// <summary>
    /// Runs the connection to its end, request after request; connection failures end it quietly.
    /// Every wait of the common path (the next request head, the upstream's response head) is
    /// awaited in this method itself: each level an await passes through would cost a suspension
    /// and a resumption per request, and a state box besides.
    /// </summary>
    public async Task RunAsync()
    {
        _client.IdleTimeout = TimeSpan.Zero;
        _client.AttachUpstream(reason => Volatile.Read(ref _upstream)?.Abort(new ConnectionAbortedException(reason)));
        using var stopping = _stopping.UnsafeRegister(static s => ((Http1ProxySession)s!).OnStopping(), this);
        try
        {
            while (_host.Model.Http is { } model)
            {
                var wait = BeginHeadWait(model.Config);
                HeadOutcome outcome;
                Http1Error error;
                try
                {
                    while (!TryTakeHead(await _input.ReadAsync().ConfigureAwait(false), model.Config, ref wait, out outcome, out error))
                    {
                    }
                }
                finally
                {
                    _idle = false;
                }

                if (outcome == HeadOutcome.Closed)
                {
                    return;
                }

                if (outcome == HeadOutcome.Http2)
                {
                    await _handler.ServeHttp2Async(_client, _host, _listenerMetrics).ConfigureAwait(false);
                    return;
                }

                if (outcome == HeadOutcome.Refused)
                {
                    // The head did not parse: what it holds is not a request to describe.
                    _request.Reset(0);
                    await RefuseAsync(model, route: null, error.Status, error.Reason, _tracker.Now).ConfigureAwait(false);
                    return;
                }

                var started = _tracker.Now;
                _requestBody.ClearCount();
                _request.NormalizePath(model.Config.PathNormalization);
                var route = model.Routes.Match(_request);
                if (route is null)
                {
                    await RefuseAsync(model, null, 404, "no route matches", started).ConfigureAwait(false);
                    return;
                }

                route.Metrics.RequestStarted();
                if (_request.Upgrade && !route.Config.WebSocket)
                {
                    _request.DropUpgrade();
                }

                if (model.Config.MaxBodySize < _request.ContentLength)
                {
                    await RefuseAsync(model, route, 413, "body larger than maxBodySize", started).ConfigureAwait(false);
                    return;
                }

                // Forwarding, retries included, is awaited right here too: this method's state lives
                // as long as the connection, while an async method per request would need a state
                // box per waiting request, and with hundreds waiting the runtime's small box cache
                // runs dry: a fresh box, and garbage, for nearly every request.
                route.Budget.RequestStarted();
                var retry = default(RetryDecision);
                try
                {
                    var service = route.PickService();
                    var balancer = service.Balancer;
                    service.Metrics.Http.RequestStarted();
                    GeneratedCookie? generated = null;
                    var key = service.HashesRequests ? RequestHashKey.Compute(service.Config.Lb.HashKeys, _request, _clientAddress, out generated) : null;
                    var index = key is { } hash ? balancer.Pick(hash) : balancer.Pick();
                    if (index < 0)
                    {
                        service.Metrics.NoneAvailable();
                        _handler.WarnNoneAvailable(route.Config.Name, service.Config.Name);
                        await RefuseAsync(model, route, 503, "no endpoint available", started, service).ConfigureAwait(false);
                        return;
                    }

                    if (service.Config.Http.Version.Major >= 2 && !_request.Upgrade)
                    {
                        if (!await ForwardOverHttp2Async(model, route, service, index, generated, started).ConfigureAwait(false))
                        {
                            return;
                        }

                        continue;
                    }

                    var requestId = NextRequestId();

                    // The one rule of every path (RetryDecision); an upgrade is never sent twice, as a WebSocket from an HTTP/2 client is not.
                    retry = new RetryDecision(route.Config.Retry, route.Budget, service.Config.ConnectAttempts, IsIdempotent(_request.Method) && !_request.Upgrade);
                    _tried.Clear();
                    var resend = false;
                    while (true)
                    {
                        // Failed dials move on to the next endpoint in here, up to connectAttempts.
                        var leased = await _handler.Connector.ConnectAsync(service, index, _tried, pooled: true, _client.Client.ConnectionClosed, fresh: resend).ConfigureAwait(false);
                        if (leased is not { } lease)
                        {
                            service.Metrics.AttemptsExhausted();
                            _handler.WarnUnreachable(route.Config.Name, service.Config.Name);
                            await RefuseAsync(model, route, 503, "no endpoint reachable", started, service, retries: retry.Retries).ConfigureAwait(false);
                            return;
                        }

                        var exchange = _exchange;
                        exchange.Begin(model, route, service, lease, started, requestId, retry.Retries);
                        var failure = await exchange.SendAsync().ConfigureAwait(false);
                        if (failure == ExchangeFailure.None)
                        {
                            var input = exchange.BeginResponseHead();
                            try
                            {
                                ResponseHeadStep step;
                                while ((step = exchange.TakeResponseHead(await input.ReadAsync().ConfigureAwait(false), out failure)) != ResponseHeadStep.Done)
                                {
                                    if (step == ResponseHeadStep.Interim)
                                    {
                                        await _output.FlushAsync().ConfigureAwait(false);
                                    }
                                }
                            }
                            catch (Exception ex) when (IsConnectionFailure(ex))
                            {
                                failure = exchange.ConnectionFailed;
                            }
                            finally
                            {
                                exchange.EndResponseHead();
                            }
                        }

                        // The body is streamed, never held: a request with one cannot be sent again.
                        var attempt = failure == ExchangeFailure.None && !retry.MayRetryStatus(_response.Status) ? null : AttemptFailureOf(failure, lease.Reused && exchange.NothingReceived);
                        var next = attempt is { } failed ? retry.NextEndpoint(failed, _response.Status, replayable: !_request.HasBody, balancer, _tried, lease.Index) : -1;
                        if (failure == ExchangeFailure.None && next < 0)
                        {
                            // A good answer, or a status the route retries on when no retry may go (budget spent,
                            // no endpoint left): either way the upstream's own response is the client's.
                            if (!await exchange.CompleteAsync(generated).ConfigureAwait(false))
                            {
                                return;
                            }

                            break;
                        }

                        // The exchange failed, or answered a status that is retried: this connection is done. A stale
                        // pooled connection is most likely the upstream's keep-alive racing the reuse: no fault of the endpoint's.
                        await exchange.AbandonAsync(reportFailure: attempt != AttemptFailure.StaleReset && exchange.UpstreamAtFault(failure)).ConfigureAwait(false);
                        resend = next == lease.Index;
                        if (resend)
                        {
                            // Resent once to the same endpoint, on a new connection: the other idle ones may be as stale.
                            _tried.Remove(next);
                            index = next;
                            continue;
                        }

                        if (next >= 0)
                        {
                            route.Metrics.Retried();
                            service.Metrics.Http.Retried();
                            index = next;
                            continue;
                        }

                        var status = failure switch
                        {
                            ExchangeFailure.Timeout => 504,
                            ExchangeFailure.ClientBody => exchange.ClientBodyStatus,
                            ExchangeFailure.ClientStalled => 408,
                            _ => 502,
                        };
                        if (exchange.UpstreamAtFault(failure))
                        {
                            _handler.WarnExchangeFailed(route.Config.Name, service.Config.Name, lease.Endpoint.Config.Address, failure.ToString(), status);
                        }

                        await RefuseAsync(model, route, status, failure.ToString(), started, service, lease.Endpoint, retry.Retries).ConfigureAwait(false);
                        return;
                    }
                }
                finally
                {
                    retry.Release();
                    route.Budget.RequestEnded();
                }
            }
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            // The client (or the upstream, when it was being read) went away: nothing to answer.
        }
        finally
        {
            _client.DisarmDeadline();
        }
    }

    private void OnStopping()
    {
        // Between requests there is nothing to finish: wake the idle read so the connection closes now.
        if (_idle)
        {
            _input.CancelPendingRead();
        }
    }

    /// <summary>
    /// Answers a request the proxy will not (or cannot) forward with its own error response,
    /// then closes the connection gracefully: the FIN goes out after the response and the
    /// client's further bytes are read and dropped for a moment, so that closing with unread
    /// input does not reset the connection and destroy the response before the client reads it.
    /// </summary>
    private async ValueTask RefuseAsync(HttpListenerModel model, RouteModel? route, int status, string reason, long started, ServiceModel? service = null, UpstreamEndpoint? endpoint = null, int retries = 0)
    {
        _handler.LogRefused(_client.Client.ConnectionId, status, reason);
        route?.Metrics.Responded(status);
        service?.Metrics.Http.Responded(status);
        _listenerMetrics.HttpRefused(status);
        Http1ResponseWriter.WriteError(_output, status);
        await _output.FlushAsync().ConfigureAwait(false);
        Log(model, route, service, endpoint, status, 0, started, null, retries, requestId: null);
        await _output.CompleteAsync().ConfigureAwait(false);
        _client.ArmDeadline(_tracker.DeadlineAfter(LingerTimeout), _input);
        while (true)
        {
            var result = await _input.ReadAsync().ConfigureAwait(false);
            _input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private void Log(HttpListenerModel model, RouteModel? route, ServiceModel? service, UpstreamEndpoint? endpoint, int status, long bytesSent, long started, double? upstreamMilliseconds, int retries, RequestId? requestId)
    {
        if (model.AccessLog is not { } log)
        {
            return;
        }

        log.Write(new AccessLogEntry(
            DateTimeOffset.UtcNow,
            _host.Model.Config.Name,
            route?.Config.Name,
            service?.Config.Name,
            endpoint?.Config.Address,
            _clientAddress,
            Encoding.ASCII.GetString(_request.Method),
            Encoding.Latin1.GetString(_request.Host),
            Encoding.Latin1.GetString(_request.Target),
            status,
            _request.Bytes.Length + _requestBody.Forwarded,
            bytesSent,
            _tracker.Since(started).TotalMilliseconds,
            upstreamMilliseconds,
            retries,
            requestId?.ToString() ?? string.Empty));
    }

    /// <summary>A failed exchange (or a retried status, <see cref="ExchangeFailure.None"/>) as the retry rule sees it; null for one never retried.</summary>
    /// <param name="staleCandidate">The connection came from the pool and closed without a byte of response.</param>
    private static AttemptFailure? AttemptFailureOf(ExchangeFailure failure, bool staleCandidate) => failure switch
    {
        ExchangeFailure.None => AttemptFailure.Status,
        ExchangeFailure.Reset => staleCandidate ? AttemptFailure.StaleReset : AttemptFailure.Reset,
        ExchangeFailure.Timeout => AttemptFailure.Timeout,
        _ => null,
    };

    private RequestId NextRequestId() => new(_client.Client.ConnectionId, ++_requestCount);

    private static bool IsIdempotent(ReadOnlySpan<byte> method)
        => method.SequenceEqual("GET"u8) || method.SequenceEqual("HEAD"u8) || method.SequenceEqual("OPTIONS"u8)
            || method.SequenceEqual("PUT"u8) || method.SequenceEqual("DELETE"u8) || method.SequenceEqual("TRACE"u8);

    private static bool IsConnectionFailure(Exception ex)
        => ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException or InvalidOperationException;

    private static Http1BodyFraming RequestFraming(Http1RequestHead request)
        => request.Chunked ? Http1BodyFraming.Chunked : request.ContentLength > 0 ? Http1BodyFraming.Length : Http1BodyFraming.None;
}
