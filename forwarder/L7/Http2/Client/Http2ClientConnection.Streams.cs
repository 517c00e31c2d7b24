using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>Stream life: opening (waiting for a slot), the stream table, cancelling, closing and pooling.</summary>
internal sealed partial class Http2ClientConnection
{
    /// <summary>
    /// Opens a stream and sends the request head (<paramref name="head"/>: pseudo-headers first,
    /// names lowercase, as RFC 9113 8.3 wants; not checked here). With <paramref name="endStream"/>
    /// the request has no body. At the server's stream limit this waits for a stream to close.
    /// Cancelling <paramref name="cancellationToken"/> later resets the stream (RST_STREAM CANCEL);
    /// cancelled already, nothing is sent.
    /// </summary>
    /// <exception cref="Http2ClientException">The connection takes no new streams (<see cref="Http2ClientException.CanRetry"/>: try another).</exception>
    public ValueTask<Http2ClientStream> OpenStreamAsync(Http2HeaderList head, bool endStream, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Http2ClientStream>(cancellationToken);
        }

        Http2ClientStream? stream;
        Http2ClientException? refusal;
        TaskCompletionSource? waiter = null;
        lock (_gate)
        {
            if (!TryOpen(head, endStream, out stream, out refusal) && refusal is null)
            {
                waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _openWaiters.Enqueue(waiter);
            }
        }

        if (stream is not null)
        {
            Opened(stream, cancellationToken);
            return ValueTask.FromResult(stream);
        }

        return refusal is not null ? ValueTask.FromException<Http2ClientStream>(refusal) : OpenWhenFreeAsync(waiter!, head, endStream, cancellationToken);
    }

    /// <summary>Test hook: the next stream takes id <paramref name="id"/> (odd), to reach the end of the id space.</summary>
    internal void SkipStreamIdsTo(int id)
    {
        lock (_gate)
        {
            _nextStreamId = id;
        }
    }

    private async ValueTask<Http2ClientStream> OpenWhenFreeAsync(TaskCompletionSource waiter, Http2HeaderList head, bool endStream, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                await waiter.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!waiter.TrySetCanceled())
            {
                // Woken as it gave up: the slot it was handed goes to the next opener.
                lock (_gate)
                {
                    WakeOpener();
                }

                throw;
            }

            Http2ClientStream? stream;
            Http2ClientException? refusal;
            lock (_gate)
            {
                if (!TryOpen(head, endStream, out stream, out refusal) && refusal is null)
                {
                    // Another opener took the slot first: wait again.
                    waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _openWaiters.Enqueue(waiter);
                    continue;
                }
            }

            if (refusal is not null)
            {
                throw refusal;
            }

            Opened(stream!, cancellationToken);
            return stream!;
        }
    }

    /// <summary>Outside the lock, once a stream opened: its HEADERS leave, then its token is watched.</summary>
    private void Opened(Http2ClientStream stream, CancellationToken cancellationToken)
    {
        Flush();
        stream.Exchange.Watch(cancellationToken);
    }

    /// <summary>Under the lock: opens a stream if a slot is free; otherwise null and, unless the caller may wait, why not.</summary>
    private bool TryOpen(Http2HeaderList head, bool endStream, out Http2ClientStream? stream, out Http2ClientException? refusal)
    {
        stream = null;
        refusal = null;
        if (_closed || _draining)
        {
            refusal = new Http2ClientException("The upstream connection takes no new streams.", Http2ErrorCode.RefusedStream, canRetry: true, Failure);
            return false;
        }

        if (_active >= _peerMaxStreams)
        {
            return false;
        }

        var id = (int)_nextStreamId;
        _nextStreamId += 2;
        if (_nextStreamId > int.MaxValue)
        {
            // Stream ids are spent: this is the last stream, those open finish, openers go elsewhere.
            _draining = true;
            while (_openWaiters.TryDequeue(out var waiter))
            {
                waiter.TrySetResult();
            }

            SlotsChanged?.Invoke();
        }

        var exchange = _free.Count > 0 ? _free.Pop() : new Http2ClientExchange(this, _options);
        exchange.Open(id, _peerInitialWindow, _options.InitialStreamWindow);
        exchange.LocalEnded = endStream;
        _streams[id] = exchange;
        _active++;
        WriteHeaderBlock(id, head, endStream);
        stream = new Http2ClientStream(exchange);
        return true;
    }

    private void WriteHeaderBlock(int streamId, Http2HeaderList fields, bool endStream)
    {
        _headerBlock.ResetWrittenCount();
        _encoder.BeginBlock(_headerBlock);
        for (var i = 0; i < fields.Count; i++)
        {
            _encoder.Encode(fields.Name(i), fields.Value(i), _headerBlock);
        }

        Http2FrameWriter.WriteHeaders(Out, streamId, _headerBlock.WrittenSpan, endStream, _peerMaxFrameSize);
    }

    /// <summary>The caller waits on the response head; completes at once if it is in, or fails if the stream did.</summary>
    internal ValueTask WaitForHeadAsync(Http2ClientExchange stream, int generation)
    {
        lock (_gate)
        {
            if (stream.Generation != generation)
            {
                return ValueTask.FromException(StaleHandle());
            }

            if (stream.HeadReceived)
            {
                return ValueTask.CompletedTask;
            }

            if (stream.Error is { } error)
            {
                return ValueTask.FromException(error);
            }

            stream.HeadWaiting = true;
            return stream.HeadSignal.Arm();
        }
    }

    /// <summary>
    /// Resets the stream of the lease <paramref name="generation"/>; false, touching nothing, when
    /// that lease has ended (the exchange may be another request's by now: checked under the lock,
    /// which recycling and reopening take too).
    /// </summary>
    internal bool TryCancel(Http2ClientExchange stream, int generation)
    {
        lock (_gate)
        {
            if (stream.Generation != generation)
            {
                return false;
            }

            if (stream.Closed || stream.Id == 0)
            {
                return true;
            }

            if (!_closed)
            {
                Http2FrameWriter.WriteRstStream(Out, stream.Id, Http2ErrorCode.Cancel);
            }

            stream.Error ??= new Http2ClientException("The request was cancelled.", Http2ErrorCode.Cancel, canRetry: false);
            CloseStream(stream);
        }

        Flush();
        stream.Body.Reader.CancelPendingRead();
        WakeWithError(stream);
        return true;
    }

    private static ObjectDisposedException StaleHandle() => new(typeof(Http2ClientStream).FullName, "The stream was disposed; its exchange may serve another request now.");

    /// <summary>A stream's last holder let go: it waits here for the next exchange.</summary>
    internal void Return(Http2ClientExchange stream)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _free.Push(stream);
            }
        }
    }

    /// <summary>Under the lock: a stream that has ended both ways leaves the table.</summary>
    private void CloseIfEnded(Http2ClientExchange stream)
    {
        if (stream.LocalEnded && stream.RemoteEnded)
        {
            CloseStream(stream);
        }
    }

    /// <summary>Under the lock: the stream leaves the table and frees its slot for a waiting opener.</summary>
    private void CloseStream(Http2ClientExchange stream)
    {
        if (stream.Closed)
        {
            return;
        }

        stream.Closed = true;
        _streams.Remove(stream.Id);
        _windowWaiters.Remove(stream);
        _active--;
        if (_active == 0)
        {
            _idleSince = _options.Time.GetTimestamp();
            if (_draining && !_closed)
            {
                _pendingAbort ??= new PendingAbort(null, Http2ErrorCode.NoError);
                _input.CancelPendingRead();
            }
        }

        WakeOpener();
        SlotsChanged?.Invoke();
        stream.Release();
    }

    /// <summary>Under the lock: hands a free slot to the first opener still waiting (those that gave up are cancelled and skipped).</summary>
    private void WakeOpener()
    {
        while (_openWaiters.TryDequeue(out var waiter) && !waiter.TrySetResult())
        {
        }
    }

    /// <summary>Outside the lock: a failed stream's waits end with its error.</summary>
    private void WakeWithError(Http2ClientExchange stream)
    {
        bool head;
        bool window;
        lock (_gate)
        {
            head = stream.HeadWaiting;
            window = stream.WindowWaiting;
            stream.HeadWaiting = stream.WindowWaiting = false;
        }

        if (head)
        {
            stream.HeadSignal.Fail(stream.Error!);
        }

        if (window)
        {
            stream.WindowSignal.Fail(stream.Error!);
        }
    }
}
