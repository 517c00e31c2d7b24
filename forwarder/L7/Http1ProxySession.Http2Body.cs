using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Forwarder.Configuration;
using Forwarder.L7.Http1;

namespace Forwarder.L7;

/// <summary>Whose wait made an HTTP/2 attempt's deadline pass.</summary>
internal enum Http2Blame
{
    /// <summary>The deadline has not passed.</summary>
    None,

    /// <summary>The upstream: no response head within the route's timeout, or it would not take more of the body.</summary>
    Upstream,

    /// <summary>The client: its body paused longer than the listener's bodyTimeout.</summary>
    Client,
}

/// <content>The HTTP/1 client's side of an exchange with an HTTP/2 upstream: its body, and how long it may take.</content>
internal sealed partial class Http1ProxySession
{
    /// <summary>
    /// The client's body as the HTTP/2 request's content: streamed from the connection as the
    /// handler asks for it, de-chunked, within the listener's size limit. Sends the client its
    /// 100 Continue first when it asked to wait for one.
    /// </summary>
    private sealed class ClientBodyContent(Http1ProxySession session, HttpListenerModel model) : HttpContent
    {
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _completedAt;

        /// <summary>Completes when the body stopped being read from the client, however that ended.</summary>
        public Task Finished => _finished.Task;

        /// <summary>True once the handler began to read the body: from then on it cannot be sent again.</summary>
        public bool Started { get; private set; }

        /// <summary>When the whole body had gone to the handler (a tracker timestamp); 0 until then.</summary>
        public long CompletedAt => Volatile.Read(ref _completedAt);

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
                    if (Outcome == BodyOutcome.Complete)
                    {
                        Volatile.Write(ref _completedAt, session._tracker.Now);
                    }
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

    /// <summary>
    /// The deadline of one attempt over HTTP/2, timed as the HTTP/1 upstream path times its
    /// exchange (<see cref="Exchange"/>): the route's timeout runs from when the upstream has the
    /// whole request; while the body is on its way, the client may pause for the listener's
    /// bodyTimeout (then it gets 408, and the endpoint is not blamed) and the upstream may refuse
    /// to take more for the route's timeout. When it passes, the attempt's token is cancelled and
    /// <see cref="Passed"/> says whose wait it was. One timer, looked at again only when it fires.
    /// </summary>
    private sealed class Http2AttemptDeadline : IAsyncDisposable
    {
        private readonly Lock _lock = new();
        private readonly Http1ProxySession _session;
        private readonly HttpListenerModel _model;
        private readonly RouteModel _route;
        private readonly ClientBodyContent? _body;
        private readonly long _sentAt;
        private readonly CancellationTokenSource _cancel;
        private readonly ITimer _timer;
        private bool _stopped;
        private volatile Http2Blame _passed;

        public Http2AttemptDeadline(Http1ProxySession session, HttpListenerModel model, RouteModel route, ClientBodyContent? body)
        {
            (_session, _model, _route, _body) = (session, model, route, body);
            _sentAt = session._tracker.Now;
            _cancel = CancellationTokenSource.CreateLinkedTokenSource(session._client.Client.ConnectionClosed);
            _timer = session._tracker.CreateTimer(static state => ((Http2AttemptDeadline)state!).Check(), this);
            Check();
        }

        /// <summary>Cancelled when the deadline passes, or when the client connection closes.</summary>
        public CancellationToken Token => _cancel.Token;

        /// <summary>Whose wait it was when the deadline passed; <see cref="Http2Blame.None"/> while it has not.</summary>
        public Http2Blame Passed => _passed;

        /// <summary>When the upstream had the whole request: the body's end, or the attempt's start for a request without one.</summary>
        public long RequestSentAt => _body is { CompletedAt: > 0 and var completed } ? completed : _sentAt;

        /// <summary>The response head came (or the attempt failed): nothing is timed from here on, and <see cref="Passed"/> stays as it is.</summary>
        public void Stop()
        {
            lock (_lock)
            {
                _stopped = true;
                _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
        }

        /// <summary>Waits out a check in progress, so that the token is never cancelled once disposed.</summary>
        public async ValueTask DisposeAsync()
        {
            Stop();
            await _timer.DisposeAsync().ConfigureAwait(false);
            _cancel.Dispose();
        }

        private void Check()
        {
            var tracker = _session._tracker;
            var now = tracker.Now;
            var blame = Http2Blame.Upstream;
            long due;
            long next;
            if (_body is null || _body.CompletedAt != 0)
            {
                due = next = tracker.DeadlineAfter(RequestSentAt, _route.Config.Timeout);
            }
            else if (!_body.Started)
            {
                // The handler has not asked for the body yet (it is still connecting): look again
                // within a bodyTimeout, since once the body flows the client's pauses are timed.
                due = tracker.DeadlineAfter(_sentAt, _route.Config.Timeout);
                next = tracker.DeadlineAfter(now, _model.Config.RequestBodyTimeout);
            }
            else
            {
                // Whichever side turns out to be waited on when the first of the two passes; once past, the one due.
                var lastProgress = Math.Max(_sentAt, _session._client.LastActivity);
                var clientDue = tracker.DeadlineAfter(lastProgress, _model.Config.RequestBodyTimeout);
                var upstreamDue = tracker.DeadlineAfter(lastProgress, _route.Config.Timeout);
                (blame, due) = _session._requestBody.ReadingSource ? (Http2Blame.Client, clientDue) : (Http2Blame.Upstream, upstreamDue);
                next = Math.Min(clientDue, upstreamDue);
            }

            lock (_lock)
            {
                if (_stopped)
                {
                    return;
                }

                if (now < due)
                {
                    _timer.Change(tracker.Until(next > now ? Math.Min(next, due) : due), Timeout.InfiniteTimeSpan);
                    return;
                }

                // Set before the cancel: the attempt that wakes up to it reads whose wait it was.
                _stopped = true;
                _passed = blame;
            }

            // The handler may wait for its content before it gives up: the body's read of the client stops too.
            if (_body is { Started: true, Outcome: null })
            {
                _session._input.CancelPendingRead();
            }

            _cancel.Cancel();
        }
    }
}
