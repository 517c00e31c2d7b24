using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// Streams: opening one within the peer's limit, the writes, FIN, consumption and aborts their
// QuicStream asks for, and the wait for none to be open that a drain uses.
internal sealed unsafe partial class QuicConnection
{
    /// <summary>
    /// Ends once no stream is open (or the connection has ended). ngtcp2 closes a stream only when
    /// both sides finished it and every byte sent on it was acknowledged, so closing the connection
    /// then loses nothing: how a link that is replaced is drained.
    /// </summary>
    public Task WhenNoStreamsAsync()
    {
        lock (_gate)
        {
            if (_failure is not null || _streams.Count == 0)
            {
                return Task.CompletedTask;
            }

            _noStreams ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _noStreams.Task;
        }
    }

    /// <summary>Called under the lock as a stream leaves <see cref="_streams"/>.</summary>
    private void OnStreamRemovedLocked()
    {
        if (_streams.Count == 0 && _noStreams is { } waiting)
        {
            _noStreams = null;
            waiting.TrySetResult();
        }
    }

    /// <returns>The new stream, or null when the peer's stream limit is reached (then <paramref name="wait"/> ends when it rises).</returns>
    private QuicStream? TryOpenStream(out Task? wait)
    {
        lock (_gate)
        {
            ThrowIfFailed();
            long id;
            var rv = OpenBidiStream(_conn, &id, null);
            if (rv == 0)
            {
                var stream = new QuicStream(this, id, _chunks);
                _streams.Add(id, stream);
                wait = null;
                return stream;
            }

            if (rv != ErrStreamIdBlocked)
            {
                throw new QuicException($"ngtcp2_conn_open_bidi_stream: {ErrorText(rv)}");
            }

            _streamsAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = _streamsAvailable.Task;
            return null;
        }
    }

    internal (int Accepted, Task? Waiter) Write(QuicStream stream, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            ThrowIfClosed(stream);
            var space = (int)Math.Max(0, _options.StreamSendBuffer - stream.Send.Unacked);
            var accepted = Math.Min(space, data.Length);
            stream.Send.Append(data[..accepted]);
            FlushLocked();
            return (accepted, accepted < data.Length ? stream.WaitForSpace() : null);
        }
    }

    internal void CompleteWrites(QuicStream stream)
    {
        lock (_gate)
        {
            if (stream.Send.FinRequested)
            {
                return;
            }

            ThrowIfClosed(stream);
            stream.Send.FinRequested = true;
            FlushLocked();
        }
    }

    /// <summary>The reader took <paramref name="length"/> bytes: reopen that much stream and connection window.</summary>
    internal void OnConsumed(long streamId, int length)
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return;
            }

            _ = ExtendMaxStreamOffset(_conn, streamId, (ulong)length);
            ExtendMaxOffset(_conn, (ulong)length);
            FlushLocked();
        }
    }

    /// <summary>Resets both directions of <paramref name="stream"/> (RESET_STREAM and STOP_SENDING).</summary>
    internal void AbortStream(QuicStream stream, ulong errorCode)
    {
        lock (_gate)
        {
            if (_failure is not null || stream.IsClosed)
            {
                return;
            }

            _ = ShutdownStream(_conn, stream.Id, errorCode);
            stream.OnClosed(new QuicException($"stream {stream.Id} aborted"));
            FlushLocked();
        }
    }

    private void ThrowIfClosed(QuicStream stream)
    {
        ThrowIfFailed();
        if (stream.IsClosed || stream.Send.FinRequested)
        {
            throw new QuicException($"stream {stream.Id} is closed for writing");
        }
    }
}
