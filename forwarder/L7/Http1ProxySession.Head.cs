using System.Buffers;
using System.IO.Pipelines;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Http2;

namespace Forwarder.L7;

/// <content>Waiting for and reading the next request head, under the keep-alive and header timeouts.</content>
internal sealed partial class Http1ProxySession
{
    /// <summary>Where the wait for a request head stands: the deadline armed, and whether its first byte came.</summary>
    private readonly record struct HeadWait(long Deadline, bool Started);

    private enum HeadOutcome
    {
        Parsed,
        Closed,
        Refused,

        /// <summary>The connection opened with the HTTP/2 preface: it goes to the HTTP/2 front.</summary>
        Http2,
    }

    /// <summary>Arms the keep-alive deadline for the next request's first byte.</summary>
    private HeadWait BeginHeadWait(HttpListenerConfig config)
    {
        var deadline = _tracker.DeadlineAfter(config.KeepAliveTimeout);
        _client.ArmDeadline(deadline, _input);
        _idle = true;
        return new HeadWait(deadline, Started: false);
    }

    /// <summary>
    /// Looks at one read of the request head: up to the keep-alive timeout for its first byte
    /// (then closes quietly), up to the header timeout from there to its end (then 408). True
    /// when the outcome is decided; false to read again.
    /// </summary>
    private bool TryTakeHead(ReadResult result, HttpListenerConfig config, ref HeadWait wait, out HeadOutcome outcome, out Http1Error error)
    {
        var buffer = result.Buffer;
        error = default;
        if (result.IsCanceled)
        {
            if (_client.DisarmDeadline())
            {
                (outcome, error) = wait.Started ? (HeadOutcome.Refused, new Http1Error(408, "request head not received within the header timeout")) : (HeadOutcome.Closed, default);
                return true;
            }

            if (_stopping.IsCancellationRequested && buffer.IsEmpty)
            {
                outcome = HeadOutcome.Closed;
                return true;
            }

            _client.ArmDeadline(wait.Deadline, _input);
        }

        if (!buffer.IsEmpty)
        {
            _idle = false;
        }

        if (_requestCount == 0 && config.Http2 && Http2Preface.Check(buffer) is { } isHttp2)
        {
            if (isHttp2)
            {
                // Left unread: the HTTP/2 server reads the preface itself.
                _input.AdvanceTo(buffer.Start);
                _client.DisarmDeadline();
                outcome = HeadOutcome.Http2;
                return true;
            }
        }
        else if (_requestCount == 0 && config.Http2 && !result.IsCompleted)
        {
            // Too few bytes yet to tell HTTP/2's preface from an HTTP/1.1 request.
            _input.AdvanceTo(buffer.Start, buffer.End);
            KeepWaiting(buffer, config, ref wait);
            outcome = default;
            return false;
        }

        var status = Http1RequestParser.TryParse(buffer, config.Limits, _request, out var consumed, out error);
        if (status == Http1ParseStatus.Complete)
        {
            _input.AdvanceTo(consumed);
            _client.DisarmDeadline();
            outcome = HeadOutcome.Parsed;
            return true;
        }

        if (status == Http1ParseStatus.Error)
        {
            _input.AdvanceTo(buffer.End);
            _client.DisarmDeadline();
            outcome = HeadOutcome.Refused;
            return true;
        }

        if (result.IsCompleted)
        {
            // Closed between requests, or part-way through a head nobody will finish.
            _input.AdvanceTo(buffer.End);
            _client.DisarmDeadline();
            outcome = HeadOutcome.Closed;
            return true;
        }

        _input.AdvanceTo(buffer.Start, buffer.End);
        KeepWaiting(buffer, config, ref wait);
        outcome = default;
        return false;
    }

    /// <summary>
    /// A head has begun but is not complete: from its first byte on, it has the header timeout
    /// to finish. Armed only now, since nearly every head arrives whole in one read.
    /// </summary>
    private void KeepWaiting(in ReadOnlySequence<byte> buffer, HttpListenerConfig config, ref HeadWait wait)
    {
        if (!wait.Started && !buffer.IsEmpty)
        {
            wait = new HeadWait(_tracker.DeadlineAfter(config.HeaderTimeout), Started: true);
            _client.ArmDeadline(wait.Deadline, _input);
        }
    }
}
