using System.Runtime.CompilerServices;
using Forwarder.L4;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.LoadBalancing.Health;
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7;

/// <content>The end of an exchange: the final response forwarded, or the exchange given up; the upstream connection settled either way.</content>
internal sealed partial class Http1ProxySession
{
    private sealed partial class Exchange
    {
        /// <summary>Forwards the final response and settles both connections; true when the client connection stays open.</summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<bool> CompleteAsync(GeneratedCookie? generated)
        {
            var response = session._response;
            var request = session._request;
            var endpoint = _lease.Endpoint;
            var status = response.Status;
            _route.Metrics.UpstreamLatency.Record(TimeSpan.FromMilliseconds(_upstreamMilliseconds));
            _service.Metrics.Http.UpstreamLatency.Record(TimeSpan.FromMilliseconds(_upstreamMilliseconds));
            if (status >= 500)
            {
                _service.Health.ReportFailure(endpoint.Health);
            }
            else
            {
                ServiceHealth.ReportSuccess(endpoint.Health);
            }

            if (status == 101)
            {
                return await TunnelAsync().ConfigureAwait(false);
            }

            // An HTTP/1.0 client cannot read chunked framing: it gets the data, delimited by the close.
            var dechunk = request.Version == Http1Version.Http10 && response.Framing == Http1BodyFraming.Chunked;
            var closeAfter = !request.KeepAlive || response.Framing == Http1BodyFraming.UntilClose || dechunk || session._stopping.IsCancellationRequested;
            var output = session._output;
            var before = output.UnflushedBytes;
            Http1ResponseWriter.Write(output, response, closeAfter, generated?.SetCookieValue, dechunk, sayKeepAlive: request.Version == Http1Version.Http10);
            var headBytes = output.UnflushedBytes - before;
            session._client.IdleTimeout = _route.Config.Timeout;
            BodyOutcome body;
            try
            {
                body = await session._responseBody.ForwardAsync(_connection.Transport.Input, output, response.Framing, response.ContentLength, limit: null, flushLast: false, dechunk).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                // A reset from the upstream (or the client gone): either way the response is cut.
                body = BodyOutcome.Truncated;
            }

            if (body != BodyOutcome.Complete)
            {
                // The client already has part of the response: only a reset tells it the rest is missing.
                session._handler.WarnResponseCut(_route.Config.Name, _service.Config.Name, endpoint.Config.Address, body.ToString());
                Reset(session._client.Client);
                Account(status, headBytes, aborted: true);
                await AbandonAsync(reportFailure: body != BodyOutcome.TargetClosed && UpstreamAtFault(ExchangeFailure.None)).ConfigureAwait(false);
                return false;
            }

            var flushed = await output.FlushAsync().ConfigureAwait(false);
            session._client.IdleTimeout = TimeSpan.Zero;
            var requestBodyDone = await SettleRequestBodyAsync().ConfigureAwait(false);
            Account(status, headBytes + session._responseBody.Forwarded, aborted: false);
            await ReleaseAsync(reusable: response.KeepAlive && requestBodyDone && response.Framing != Http1BodyFraming.UntilClose).ConfigureAwait(false);
            return !closeAfter && requestBodyDone && !flushed.IsCompleted;
        }

        /// <summary>The exchange is given up: the connection is closed, not pooled, and optionally the endpoint charged with a failure.</summary>
        public async ValueTask AbandonAsync(bool reportFailure)
        {
            if (reportFailure)
            {
                _service.Health.ReportFailure(_lease.Endpoint.Health);
            }

            _connection.Abort(new ConnectionAbortedException("The exchange was abandoned."));
            if (_requestBody is not null)
            {
                session._input.CancelPendingRead();
                await SettleRequestBodyAsync().ConfigureAwait(false);
            }

            await ReleaseAsync(reusable: false).ConfigureAwait(false);
        }

        /// <summary>A 101 to an upgrade request: from here on the two connections just carry bytes both ways.</summary>
        private async ValueTask<bool> TunnelAsync()
        {
            Http1ResponseWriter.Write(session._output, session._response, closeAfter: false, setCookie: null);
            await session._output.FlushAsync().ConfigureAwait(false);
            Account(101, 0, aborted: false);
            session._client.IdleTimeout = _service.Config.IdleTimeout;
            Volatile.Write(ref session._upstream, null);
            try
            {
                await new TcpProxySession(session._client, _connection, session._listenerMetrics, _service.Metrics, session._tracker).RunAsync(directSend: false).ConfigureAwait(false);
            }
            finally
            {
                await ReleaseAsync(reusable: false).ConfigureAwait(false);
            }

            return false;
        }

        /// <summary>Waits for the request body to finish; false when it did not (the client connection cannot go on).</summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<bool> SettleRequestBodyAsync()
        {
            if (_requestBody is not { } body)
            {
                return true;
            }

            _requestBody = null;
            if (!body.IsCompleted)
            {
                // The upstream answered before taking the whole body: the rest will never be read.
                session._input.CancelPendingRead();
            }

            try
            {
                return await body.ConfigureAwait(false) == BodyOutcome.Complete;
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                return false;
            }
        }

        private void Account(int status, long bytesSent, bool aborted)
        {
            _route.Metrics.Responded(status);
            _service.Metrics.Http.Responded(status);
            if (aborted)
            {
                _route.Metrics.Abort();
                _service.Metrics.Http.Abort();
            }

            session._listenerMetrics.AddSent(bytesSent);
            session._listenerMetrics.AddReceived(session._request.Bytes.Length + session._requestBody.Forwarded);
            session.Log(_model, _route, _service, _lease.Endpoint, status, bytesSent, _started, _upstreamMilliseconds, _retries, _requestId);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        private async ValueTask ReleaseAsync(bool reusable)
        {
            Volatile.Write(ref session._upstream, null);
            _lease.Endpoint.State.End();
            await _lease.Endpoint.Pool.ReturnAsync(_connection, reusable && !_deadlinePassed).ConfigureAwait(false);
        }

        private static void Reset(ConnectionContext connection)
        {
            if (connection.Features.Get<IConnectionResetFeature>() is { } reset)
            {
                reset.Reset();
            }
            else
            {
                connection.Abort(new ConnectionAbortedException("The upstream failed mid-response."));
            }
        }
    }
}
