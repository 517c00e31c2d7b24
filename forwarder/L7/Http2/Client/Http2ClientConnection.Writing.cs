using System.Buffers;
using System.IO.Pipelines;
using Forwarder.L7.Http2.Codec;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The writer. Frames are written under the lock straight into the connection's output, and one
/// thread at a time flushes it. While a flush is in flight, frames go to a backlog the flusher
/// moves over and flushes next; while a batch is open (the reader handling what one read brought,
/// or a caller opening many streams at once, <see cref="Batch"/>), flushes wait for its end. So
/// frames of many streams leave in one flush, one send and, over TLS, one record batch.
/// </summary>
internal sealed partial class Http2ClientConnection
{
    /// <summary>Answers the server provoked (PING ACK, SETTINGS ACK, RST_STREAM, WINDOW_UPDATE) that may wait behind one stuck flush.</summary>
    private const int MaxPendingControlFrames = 10_000;

    private readonly PipeWriter _output;
    private readonly ArrayBufferWriter<byte> _backlog = new(4096);
    private int _batchDepth;
    private int _pendingControl;
    private bool _unflushed;
    private bool _flushing;
    private Task _flushTask = Task.CompletedTask;

    /// <summary>Under the lock: where a frame goes now. Writing through it marks the output as owing a flush.</summary>
    private IBufferWriter<byte> Out
    {
        get
        {
            _unflushed = true;
            return _flushing ? _backlog : _output;
        }
    }

    /// <summary>
    /// Under the lock: <see cref="Out"/> for an answer the server provoked. A server that provokes
    /// them while it reads nothing would grow the backlog without end: past the cap it is a flood.
    /// </summary>
    private IBufferWriter<byte> ControlOut
    {
        get
        {
            if (_flushing && ++_pendingControl > MaxPendingControlFrames)
            {
                throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"more than {MaxPendingControlFrames} frames to answer while the server reads nothing");
            }

            return Out;
        }
    }

    /// <summary>Holds flushes back until disposed, so what the caller writes meanwhile (the heads of many streams) leaves together.</summary>
    public WriteBatch Batch()
    {
        BeginBatch();
        return new WriteBatch(this);
    }

    /// <summary>Holds flushes back until the matching <see cref="EndBatch"/>.</summary>
    internal void BeginBatch()
    {
        lock (_gate)
        {
            _batchDepth++;
        }
    }

    private static bool IsConnectionGone(Exception ex)
        => ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException or InvalidOperationException;

    /// <summary>Ends a <see cref="BeginBatch"/>: the last one out flushes what was held.</summary>
    internal void EndBatch()
    {
        lock (_gate)
        {
            _batchDepth--;
        }

        Flush();
    }

    /// <summary>Flushes what was written, unless a batch is open or another thread is flushing (it flushes this too).</summary>
    private void Flush()
    {
        lock (_gate)
        {
            if (_batchDepth > 0 || _flushing || !_unflushed || _closed)
            {
                return;
            }

            _flushing = true;
            _unflushed = false;
        }

        FlushOwned();
    }

    private void FlushOwned()
    {
        while (true)
        {
            ValueTask<FlushResult> flush;
            try
            {
                flush = _output.FlushAsync();
            }
            catch (Exception ex) when (IsConnectionGone(ex))
            {
                OutputBroken(ex);
                return;
            }

            if (!flush.IsCompletedSuccessfully)
            {
                _flushTask = FinishFlushAsync(flush);
                return;
            }

            if (flush.Result.IsCompleted)
            {
                OutputBroken(null);
                return;
            }

            if (!NextFlush())
            {
                return;
            }
        }
    }

    private async Task FinishFlushAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            if ((await flush.ConfigureAwait(false)).IsCompleted)
            {
                OutputBroken(null);
                return;
            }
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            OutputBroken(ex);
            return;
        }

        if (NextFlush())
        {
            FlushOwned();
        }
    }

    /// <summary>After a flush: moves the backlog into the output; true when there is more to flush now.</summary>
    private bool NextFlush()
    {
        lock (_gate)
        {
            if (_backlog.WrittenCount > 0)
            {
                _output.Write(_backlog.WrittenSpan);
                _backlog.ResetWrittenCount();
                _pendingControl = 0;
                _unflushed = true;
            }

            if (!_unflushed || _closed || _batchDepth > 0)
            {
                _flushing = false;
                return false;
            }

            _unflushed = false;
            return true;
        }
    }

    private void OutputBroken(Exception? error)
    {
        lock (_gate)
        {
            _flushing = false;
        }

        Abort(new Http2ClientException("The connection to the server failed while sending.", Http2ErrorCode.ConnectError, canRetry: false, error), null);
    }

    /// <summary>
    /// Once the connection has ended (nothing else writes): waits out a flush in flight, sends the
    /// GOAWAY, and completes the output. False when the server read too little for that within the
    /// deadline: the transport's sender is then still stuck in a send, and only an abort ends it.
    /// </summary>
    private async Task<bool> CloseOutputAsync(Http2ErrorCode? goAway)
    {
        // A server that reads nothing must not hold the close up: a stuck flush is given up on.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        while (true)
        {
            Task flushing;
            lock (_gate)
            {
                if (!_flushing)
                {
                    break;
                }

                flushing = _flushTask;
            }

            try
            {
                try
                {
                    await flushing.WaitAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested)
                {
                    _output.CancelPendingFlush();
                    await flushing.ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (IsConnectionGone(ex))
            {
                // The flush failed: the connection is gone, and so is the need to wait.
            }

            await Task.Yield();
        }

        try
        {
            if (_backlog.WrittenCount > 0)
            {
                _output.Write(_backlog.WrittenSpan);
                _backlog.ResetWrittenCount();
            }

            if (goAway is { } code)
            {
                Http2FrameWriter.WriteGoAway(_output, 0, code);
            }

            await _output.FlushAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            // The connection is gone: nobody is left to tell.
        }

        await _output.CompleteAsync().ConfigureAwait(false);
        return !deadline.IsCancellationRequested;
    }

    /// <summary>An open <see cref="Batch"/>: disposing it flushes what was written under it.</summary>
    internal readonly struct WriteBatch(Http2ClientConnection connection) : IDisposable
    {
        public void Dispose() => connection.EndBatch();
    }
}
