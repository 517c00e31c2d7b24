using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Forwarder.L7.Http1;
using Forwarder.Runtime;
using Forwarder.Transports.Diagnostics;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7;

/// <content>The exchange with the upstream: the request sent and its response head awaited.</content>
internal sealed partial class Http1ProxySession
{
    /// <summary>One attempt at a request on one upstream connection; one instance per session, reset for each attempt.</summary>
    private sealed partial class Exchange(Http1ProxySession session)
    {
        private HttpListenerModel _model = null!;
        private RouteModel _route = null!;
        private ServiceModel _service = null!;
        private UpstreamLease _lease;
        private long _started;
        private RequestId _requestId;
        private int _retries;
        private ConnectionContext _connection = null!;
        private Task<BodyOutcome>? _requestBody;
        private bool _clientBodyFailed;
        private long _sentAt;
        private long _bodySentAt;
        private long _continuedAt;
        private double _upstreamMilliseconds;
        private bool _deadlinePassed;
        private bool _isHead;

        /// <summary>The connection closed without a single byte of response.</summary>
        public bool NothingReceived { get; private set; }

        /// <summary>The status to answer when the client's body broke.</summary>
        public int ClientBodyStatus { get; private set; }

        public void Begin(HttpListenerModel model, RouteModel route, ServiceModel service, UpstreamLease lease, long started, RequestId requestId, int retries)
        {
            (_model, _route, _service, _lease, _started, _requestId, _retries) = (model, route, service, lease, started, requestId, retries);
            _connection = lease.Connection;
            _requestBody = null;
            _bodySentAt = _continuedAt = 0;
            _clientBodyFailed = false;
            _upstreamMilliseconds = 0;
            _deadlinePassed = false;
            NothingReceived = true;
            ClientBodyStatus = 400;
        }

        /// <summary>The client's body broke, and the upstream connection was aborted for it.</summary>
        private bool ClientBodyFailed => Volatile.Read(ref _clientBodyFailed);

        /// <summary>
        /// Sends the head and starts the body on its way; <see cref="ExchangeFailure.Reset"/> when
        /// the connection failed. Completes at once unless the upstream's socket is full.
        /// </summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<ExchangeFailure> SendAsync()
        {
            InjectedDelay.Apply();
            var request = session._request;
            Volatile.Write(ref session._upstream, _connection);
            var output = _connection.Transport.Output;
            Http1RequestWriter.Write(output, request, new ForwardingContext(session._clientAddress ?? IPAddress.None, session._scheme, _requestId));
            _sentAt = session._tracker.Now;
            try
            {
                if ((await output.FlushAsync().ConfigureAwait(false)).IsCompleted)
                {
                    return ExchangeFailure.Reset;
                }
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                return ExchangeFailure.Reset;
            }

            if (request.HasBody)
            {
                // Timed by the deadline of the response head's wait (see NextDeadline), not by
                // the idle timeout, whose abort would cut the connection without a response.
                _requestBody = ForwardRequestBodyAsync(output);
            }

            return ExchangeFailure.None;
        }

        /// <summary>
        /// Streams the request body alongside the wait for the response. A body that breaks
        /// (bad chunk, over the limit, client gone) aborts the upstream connection, so the
        /// exchange answers the client at once instead of waiting out the _route's timeout.
        /// </summary>
        private async Task<BodyOutcome> ForwardRequestBodyAsync(PipeWriter output)
        {
            var request = session._request;
            BodyOutcome outcome;
            try
            {
                outcome = await session._requestBody.ForwardAsync(session._input, output, RequestFraming(request), request.ContentLength ?? 0, _model.Config.MaxBodySize, flushLast: true).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                // Writing to the upstream failed: the response side sees the same failure.
                return BodyOutcome.TargetClosed;
            }

            if (outcome == BodyOutcome.Complete)
            {
                Volatile.Write(ref _bodySentAt, session._tracker.Now);
            }
            else if (outcome is BodyOutcome.Invalid or BodyOutcome.TooLarge or BodyOutcome.Truncated)
            {
                ClientBodyStatus = outcome == BodyOutcome.TooLarge ? 413 : 400;
                Volatile.Write(ref _clientBodyFailed, true);
                _connection.Abort(new ConnectionAbortedException($"The client's request body failed: {outcome}."));
            }

            return outcome;
        }

        /// <summary>Starts the wait for the response head, under the deadline of <see cref="NextDeadline"/>; returns the upstream's input to read it from.</summary>
        public PipeReader BeginResponseHead()
        {
            var input = _connection.Transport.Input;
            _isHead = session._request.Method.SequenceEqual("HEAD"u8);
            session._client.ArmDeadline(NextDeadline(out _, out _), input);
            return input;
        }

        /// <summary>
        /// When to look at the wait for the response head next (the deadline to arm), and when
        /// and whose fault it times out (<paramref name="due"/>, <paramref name="blame"/>). Once
        /// the request is fully sent, the route's timeout runs from there: the upstream cannot
        /// answer a request it has not had whole. Until then the body is timed by its last
        /// progress: the client may pause for the listener's bodyTimeout, the upstream may refuse
        /// to take more for the route's timeout. The body moves on without touching the timer:
        /// the deadline is looked at again only when it passes.
        /// </summary>
        private long NextDeadline(out long due, out ExchangeFailure blame)
        {
            var tracker = session._tracker;
            var bodySent = Volatile.Read(ref _bodySentAt);
            blame = ExchangeFailure.Timeout;
            if (_requestBody is null || bodySent != 0 || (session._request.ExpectContinue && _continuedAt == 0 && session._client.LastActivity <= _sentAt))
            {
                // A client that expects 100-continue waits for it: until it comes (or the client
                // stops waiting and sends), its silence is the upstream's.
                due = tracker.DeadlineAfter(bodySent != 0 ? bodySent : _sentAt, _route.Config.Timeout);
                return due;
            }

            var lastProgress = Math.Max(Math.Max(_sentAt, _continuedAt), session._client.LastActivity);
            var clientDue = tracker.DeadlineAfter(lastProgress, _model.Config.RequestBodyTimeout);
            var upstreamDue = tracker.DeadlineAfter(lastProgress, _route.Config.Timeout);
            if (session._requestBody.ReadingSource)
            {
                blame = ExchangeFailure.ClientStalled;
                due = clientDue;
            }
            else
            {
                due = upstreamDue;
            }

            // Whichever side turns out to be waited on when it passes; once past, the one due.
            var next = Math.Min(clientDue, upstreamDue);
            return next > tracker.Now ? next : due;
        }

        /// <summary>Looks at one read of the response head: whether it is complete (with its outcome), needs more, or was an interim (1xx) response to forward first.</summary>
        public ResponseHeadStep TakeResponseHead(ReadResult result, out ExchangeFailure failure)
        {
            var input = _connection.Transport.Input;
            var buffer = result.Buffer;
            failure = ExchangeFailure.None;
            if (result.IsCanceled)
            {
                var next = NextDeadline(out var due, out var blame);
                if (session._tracker.Now >= due)
                {
                    failure = blame;
                    return ResponseHeadStep.Done;
                }

                // The body moved on (or finished) since the deadline was armed: wait on to the next one.
                session._client.ArmDeadline(next, input);
            }

            NothingReceived &= buffer.IsEmpty;
            var status = Http1ResponseParser.TryParse(buffer, _model.Config.Limits, _isHead, session._response, out var consumed, out _);
            if (status == Http1ParseStatus.Error)
            {
                input.AdvanceTo(buffer.End);
                failure = ExchangeFailure.BadResponse;
                return ResponseHeadStep.Done;
            }

            if (status == Http1ParseStatus.NeedMore)
            {
                if (result.IsCompleted)
                {
                    input.AdvanceTo(buffer.End);
                    failure = ConnectionFailed;
                    return ResponseHeadStep.Done;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                return ResponseHeadStep.NeedMore;
            }

            input.AdvanceTo(consumed);
            if (!session._response.IsInterim)
            {
                // The upstream's latency, from when it had the whole request: not the client's upload time.
                var bodySent = Volatile.Read(ref _bodySentAt);
                _upstreamMilliseconds = session._tracker.Since(bodySent != 0 ? bodySent : _sentAt).TotalMilliseconds;
                // A 101 only ever answers the WebSocket upgrade the request asked for.
                failure = session._response.Status == 101 && (!session._request.Upgrade || !Ascii.EqualsIgnoreCase(session._response.First(Http1FieldKind.Upgrade), "websocket"u8))
                    ? ExchangeFailure.BadResponse
                    : ExchangeFailure.None;
                return ResponseHeadStep.Done;
            }

            // 100 Continue and friends go to the client as they come (HTTP/1.0 clients know none of them).
            if (session._request.Version == Http1Version.Http10)
            {
                return ResponseHeadStep.NeedMore;
            }

            Http1ResponseWriter.Write(session._output, session._response, closeAfter: false, setCookie: null);
            _continuedAt = session._tracker.Now;
            return ResponseHeadStep.Interim;
        }

        /// <summary>
        /// Ends the wait for the response head. A deadline that passed as the response arrived may
        /// have left a cancel pending on the upstream reader: that connection must not serve the next request.
        /// </summary>
        public void EndResponseHead() => _deadlinePassed = session._client.DisarmDeadline();

        /// <summary>What a connection failure while the head was awaited amounts to.</summary>
        public ExchangeFailure ConnectionFailed => ClientBodyFailed ? ExchangeFailure.ClientBody : ExchangeFailure.Reset;

        /// <summary>
        /// Whether a failure is the upstream's, to be counted against its endpoint: not when the
        /// client broke the exchange (a bad, stalled or abandoned body, or the client gone).
        /// </summary>
        public bool UpstreamAtFault(ExchangeFailure failure)
            => failure is not (ExchangeFailure.ClientBody or ExchangeFailure.ClientStalled) && !session._client.Client.ConnectionClosed.IsCancellationRequested;
    }
}
