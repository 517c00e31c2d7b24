using System.Text;
using Forwarder.L7.Http2.Codec;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>Endings: streams reset either way, GOAWAY received, draining, and the connection terminating.</summary>
internal sealed partial class Http2ClientConnection
{
    /// <summary>Stops taking streams; ends the connection (GOAWAY NO_ERROR, then FIN) once those open have finished.</summary>
    public void Drain()
    {
        bool idle;
        lock (_gate)
        {
            _draining = true;
            idle = _active == 0;
        }

        FailOpenWaiters();
        if (idle)
        {
            Abort(null, Http2ErrorCode.NoError);
        }
    }

    private void FailOpenWaiters()
    {
        while (true)
        {
            TaskCompletionSource? waiter;
            lock (_gate)
            {
                if (!_openWaiters.TryDequeue(out waiter))
                {
                    return;
                }
            }

            // Woken, the opener finds the connection draining or closed and is refused as retryable.
            waiter.TrySetResult();
        }
    }

    private void OnRstStream(in Http2Frame frame)
    {
        var code = frame.RstStreamErrorCode;
        Http2ClientExchange? stream;
        lock (_gate)
        {
            stream = Hold(frame.StreamId);
            if (stream is null)
            {
                return;
            }

            stream.Error ??= new Http2ClientException($"The server reset stream {stream.Id} ({code}).", code, canRetry: code == Http2ErrorCode.RefusedStream);
        }

        FailStream(stream);
    }

    /// <summary>This side resets a stream the server harmed (a stream error).</summary>
    private void ResetStream(int id, Http2ErrorCode code, string reason)
    {
        Http2ClientExchange? stream;
        lock (_gate)
        {
            Http2FrameWriter.WriteRstStream(ControlOut, id, code);
            stream = _streams.GetValueOrDefault(id);
            if (stream is null)
            {
                return;
            }

            stream.AddReference();
            stream.Error ??= new Http2ClientException($"Stream {id} failed: {reason}.", code, canRetry: false);
        }

        FailStream(stream);
    }

    /// <summary>A held stream whose <see cref="Http2ClientExchange.Error"/> is set: out of the table, its body and waits ended with the error, then let go.</summary>
    private void FailStream(Http2ClientExchange stream)
    {
        bool bodyOpen;
        lock (_gate)
        {
            bodyOpen = !stream.RemoteEnded;
            stream.RemoteEnded = true;
            CloseStream(stream);
        }

        if (bodyOpen)
        {
            stream.Body.Writer.Complete(stream.Error);
        }

        WakeWithError(stream);
        stream.Release();
    }

    private void OnGoAway(in Http2Frame frame)
    {
        var last = frame.GoAwayLastStreamId;
        var code = frame.GoAwayErrorCode;
        var debug = Encoding.ASCII.GetString(frame.GoAwayDebugData.Length > 256 ? frame.GoAwayDebugData.Slice(0, 256) : frame.GoAwayDebugData);
        List<Http2ClientExchange> refused = [];
        lock (_gate)
        {
            _goAwayReceived = true;
            _draining = true;
            SlotsChanged?.Invoke();
            if (code != Http2ErrorCode.NoError)
            {
                Failure ??= new Http2ClientException($"The server sent GOAWAY {code}: {debug}", code, canRetry: false);
            }

            foreach (var stream in _streams.Values)
            {
                if (stream.Id > last)
                {
                    stream.AddReference();
                    stream.Error ??= new Http2ClientException($"The server went away (GOAWAY {code}) without processing stream {stream.Id}.", Http2ErrorCode.RefusedStream, canRetry: true);
                    refused.Add(stream);
                }
            }

            if (_active == refused.Count)
            {
                _pendingAbort ??= new PendingAbort(null, Http2ErrorCode.NoError);
            }
        }

        foreach (var stream in refused)
        {
            FailStream(stream);
        }

        FailOpenWaiters();
    }

    /// <summary>On the reader, once it has stopped: every stream and waiting opener fails, the GOAWAY goes out, the connection closes.</summary>
    private async Task TerminateAsync(Exception? failure, Http2ErrorCode? goAway)
    {
        List<Http2ClientExchange> streams;
        lock (_gate)
        {
            _closed = true;
            _draining = true;
            Failure ??= failure;
            SlotsChanged?.Invoke();
            streams = [.. _streams.Values];
            foreach (var stream in streams)
            {
                stream.AddReference();
                stream.Error ??= Lost(stream.Id, failure);
            }

            _free.Clear();
        }

        StopTimer();
        foreach (var stream in streams)
        {
            FailStream(stream);
        }

        FailOpenWaiters();
        PingAnswered(null);
        if (!await CloseOutputAsync(goAway).ConfigureAwait(false))
        {
            // Disposing waits for the transport's sender, which a server that reads nothing holds.
            _connection.Abort(new ConnectionAbortedException("The server stopped reading."));
        }

        await _input.CompleteAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }

    /// <summary>
    /// The error of a stream open when its connection ended: its HEADERS may have been processed
    /// (RFC 9113 8.7), so it is not retryable, nor a failed connect whatever ended the connection:
    /// the cause is kept as text only, so no socket error inside it reads as a dial that failed.
    /// </summary>
    private static Http2ClientException Lost(int id, Exception? cause)
        => new($"The upstream connection ended with stream {id} open ({cause?.Message ?? "closed"}).", Http2ErrorCode.InternalError, canRetry: false);

    private sealed record PendingAbort(Exception? Reason, Http2ErrorCode? Code);
}
