using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Mux;

/// <summary>
/// The inline writer. Frames queue lock-free; the first thread to find the connection free takes
/// it and writes every queued frame in one batch and one flush (one TLS write), others queue and
/// return. Frames queued while a batch is written go out in the next, so under load frames batch
/// up without a thread hop, and alone a frame goes out on the thread that made it (a data frame
/// framed straight from the stream's pipe, without a copy). The reader's
/// batch is a batch too: what the streams' inline readers queue while it is handled goes out
/// once it ends, with the window updates it made due.
/// </summary>
public sealed partial class YamuxSession
{
    /// <summary>Bytes of data written between flushes, so control frames queued meanwhile are not held behind a long batch.</summary>
    private const long FlushThreshold = 256 * 1024;

    private const int WriterFree = 0;
    private const int WriterOwned = 1;
    private const int WriterDone = 2;

    /// <summary>
    /// Streams open up to which frames are written inline. Above it a batch is written from a pool
    /// thread, one hop per batch: with many streams, the frames they queue while the hop is under
    /// way share a flush and a TLS record, where written inline each would be its own (measured:
    /// 100 connections lost half their requests per second inline).
    /// </summary>
    private const int InlineStreamLimit = 4;

    private static readonly Action<YamuxSession> s_writeFromPool = session => session.WriteOwned();

    /// <summary>The session whose reader is handling a batch on this thread: what its streams queue waits for the batch's end.</summary>
    [ThreadStatic]
    private static YamuxSession? t_batching;

    private readonly ConcurrentQueue<YamuxHeader> _control = new();
    private readonly ConcurrentQueue<OutboundFrame> _data = new();
    private readonly ConcurrentQueue<YamuxStream> _windowDue = new();
    private int _writer;
    private int _openStreams;
    private int _readerBusy;
    private Task _flushing = Task.CompletedTask;

    /// <summary>
    /// Queues a control frame (SYN, ACK, window update, RST, ping, go-away). Control frames go out
    /// ahead of queued data, so a window update or a ping answer never waits behind megabytes of
    /// other streams' data. Once the session has ended there is nobody to tell, and it is dropped.
    /// </summary>
    internal void Send(YamuxHeader header)
    {
        if (Volatile.Read(ref _closed) == 0)
        {
            _control.Enqueue(header);
            Kick();
        }
    }

    /// <summary>Queues a frame that must stay behind the stream's data sent before it (a FIN).</summary>
    internal void SendInOrder(YamuxHeader header)
    {
        if (Volatile.Read(ref _closed) == 0)
        {
            _data.Enqueue(new OutboundFrame(header, null));
            Kick();
        }
    }

    /// <summary>
    /// Sends a data frame; the caller may release the payload once this returns. With the
    /// connection free it is framed straight from the caller's buffer into the connection, behind
    /// whatever was queued; otherwise a copy queues for the thread writing.
    /// </summary>
    internal void SendData(uint streamId, YamuxFlags flags, in ReadOnlySequence<byte> payload)
    {
        ThrowIfClosed();
        var header = new YamuxHeader(YamuxFrameType.Data, flags, streamId, (uint)payload.Length);
        if (!TakeInline())
        {
            QueueCopy(header, payload);
            return;
        }

        ValueTask<FlushResult> flush;
        try
        {
            // Everything queued before (this stream's earlier frames among it) goes first.
            var output = _connection.Transport.Output;
            WriteFrames(output, long.MaxValue);
            WriteControl(output);
            WriteHeader(output, header);
            foreach (var segment in payload)
            {
                output.Write(segment.Span);
            }

            flush = output.FlushAsync();
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            Broken();
            throw new YamuxSessionClosedException("The yamux session's connection is gone.");
        }

        if (Flushed(flush))
        {
            Write();
        }
    }

    /// <summary>
    /// Sends a data frame of <paramref name="frame"/>'s bytes after its first
    /// <see cref="YamuxHeader.Size"/>, which are free for the header: with the connection free the
    /// header is written there and the frame handed to the connection as it is, with no copy (TLS
    /// encrypts straight from it); otherwise a copy of the payload queues, as in
    /// <see cref="SendData"/>. The caller may reuse <paramref name="frame"/> once the task completes
    /// (at once, unless the connection pushes back).
    /// </summary>
    internal ValueTask SendFramedAsync(uint streamId, Memory<byte> frame)
    {
        ThrowIfClosed();
        var header = new YamuxHeader(YamuxFrameType.Data, YamuxFlags.None, streamId, (uint)(frame.Length - YamuxHeader.Size));
        if (!TakeInline())
        {
            QueueCopy(header, new ReadOnlySequence<byte>(frame[YamuxHeader.Size..]));
            return default;
        }

        header.Write(frame.Span);
        ValueTask<FlushResult> flush;
        try
        {
            var output = _connection.Transport.Output;
            WriteFrames(output, long.MaxValue);
            WriteControl(output);

            // One write and one flush, as above: a stream pipe writer (TLS's) writes what it has
            // buffered, then the frame from the caller's block, then flushes.
            flush = output.WriteAsync(frame);
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            Broken();
            throw new YamuxSessionClosedException("The yamux session's connection is gone.");
        }

        var inFlight = !flush.IsCompleted;
        if (Flushed(flush))
        {
            Write();
            return default;
        }

        // A write the connection holds may still read the frame: the caller keeps it until done.
        return inFlight ? new ValueTask(_flushing) : default;
    }

    /// <summary>
    /// A stream's consumer freed half its window or more: the update goes out now, or, while the
    /// reader handles a batch, at its end, once any FIN in the batch has been seen (a peer that
    /// sent its FIN needs no window, and HashiCorp's yamux warns of an update for a stream it has
    /// closed).
    /// </summary>
    internal void WindowDue(YamuxStream stream)
    {
        _windowDue.Enqueue(stream);
        if (Interlocked.CompareExchange(ref _readerBusy, 0, 0) == 0)
        {
            SendDueWindowUpdates();
        }
    }

    private YamuxSession? BeginBatch()
    {
        var outer = t_batching;
        t_batching = this;
        Interlocked.Exchange(ref _readerBusy, 1);
        return outer;
    }

    private void EndBatch(YamuxSession? outer)
    {
        Interlocked.Exchange(ref _readerBusy, 0);
        t_batching = outer;
        SendDueWindowUpdates();
        Kick();
    }

    private void SendDueWindowUpdates()
    {
        while (_windowDue.TryDequeue(out var stream))
        {
            stream.SendWindowUpdate();
        }
    }

    private bool WritesInline => Volatile.Read(ref _openStreams) <= InlineStreamLimit;

    private void ThrowIfClosed()
    {
        if (Volatile.Read(ref _closed) != 0)
        {
            throw new YamuxSessionClosedException("The yamux session has ended.");
        }
    }

    /// <summary>True when this thread now owns the connection to write a frame inline; false when the frame must queue.</summary>
    private bool TakeInline()
        => t_batching != this && WritesInline && Interlocked.CompareExchange(ref _writer, WriterOwned, WriterFree) == WriterFree;

    /// <summary>Queues a data frame for the thread writing, with a copy of its payload (the caller may release it on return).</summary>
    private void QueueCopy(YamuxHeader header, in ReadOnlySequence<byte> payload)
    {
        var copy = ArrayPool<byte>.Shared.Rent((int)payload.Length);
        payload.CopyTo(copy);
        Queued(payload.Length);
        _data.Enqueue(new OutboundFrame(header, copy));
        Kick();
    }

    private void Kick()
    {
        if (t_batching == this)
        {
            return;
        }

        if (WritesInline)
        {
            Write();
        }
        else if (!NothingQueued && Interlocked.CompareExchange(ref _writer, WriterOwned, WriterFree) == WriterFree)
        {
            ThreadPool.UnsafeQueueUserWorkItem(s_writeFromPool, this, preferLocal: false);
        }
    }

    /// <summary>On the pool thread that owns the connection: writes what queued meanwhile, then what queues while it writes.</summary>
    private void WriteOwned()
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = WriteQueued();
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            Broken();
            return;
        }

        if (Flushed(flush))
        {
            Write();
        }
    }

    private bool NothingQueued => _control.IsEmpty && _data.IsEmpty;

    /// <summary>Writes what is queued if no other thread is writing; the owner writes what others queue meanwhile.</summary>
    private void Write()
    {
        // Released with a full fence before the queues are looked at again: a frame queued just
        // as the owner let go is written by one of the two.
        while (!NothingQueued && Interlocked.CompareExchange(ref _writer, WriterOwned, WriterFree) == WriterFree)
        {
            ValueTask<FlushResult> flush;
            try
            {
                flush = WriteQueued();
            }
            catch (Exception ex) when (IsConnectionGone(ex))
            {
                Broken();
                return;
            }

            if (!Flushed(flush))
            {
                return;
            }
        }
    }

    /// <summary>The owner's flush: true once it is done and the connection free again; false while it is in flight (its completion writes on) or the connection is gone.</summary>
    private bool Flushed(ValueTask<FlushResult> flush)
    {
        if (!flush.IsCompletedSuccessfully)
        {
            // The connection pushes back (or failed): the owner stays the owner until it is done.
            _flushing = FinishFlushAsync(flush);
            return false;
        }

        if (flush.Result.IsCompleted)
        {
            Broken();
            return false;
        }

        Interlocked.Exchange(ref _writer, WriterFree);
        return true;
    }

    private async Task FinishFlushAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            if ((await flush.ConfigureAwait(false)).IsCompleted)
            {
                Broken();
                return;
            }
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            Broken();
            return;
        }

        Interlocked.Exchange(ref _writer, WriterFree);
        Write();
    }

    /// <summary>Writes queued frames, control frames first, up to <see cref="FlushThreshold"/> bytes of data, and flushes them.</summary>
    private ValueTask<FlushResult> WriteQueued()
    {
        var output = _connection.Transport.Output;
        WriteFrames(output, FlushThreshold);
        return output.FlushAsync();
    }

    private void WriteFrames(PipeWriter output, long limit)
    {
        var unflushed = 0L;
        WriteControl(output);
        while (unflushed < limit && _data.TryDequeue(out var frame))
        {
            // A SYN queued before this frame's data is written before it.
            WriteControl(output);
            WriteHeader(output, frame.Header);
            if (frame.Payload is { } payload)
            {
                output.Write(payload.AsSpan(0, (int)frame.Header.Length));
                ArrayPool<byte>.Shared.Return(payload);
                unflushed += frame.Header.Length;
                Taken(frame.Header.Length);
            }
        }
    }

    private void WriteControl(PipeWriter output)
    {
        while (_control.TryDequeue(out var control))
        {
            WriteHeader(output, control);
        }
    }

    /// <summary>The connection is gone: nobody writes again, and the reader, seeing it too, ends the session.</summary>
    private void Broken()
    {
        Volatile.Write(ref _writer, WriterDone);
        Close(null);
    }

    private static bool IsConnectionGone(Exception ex)
        => ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException or InvalidOperationException;

    private static void WriteHeader(PipeWriter output, YamuxHeader header)
    {
        header.Write(output.GetSpan(YamuxHeader.Size));
        output.Advance(YamuxHeader.Size);
    }

    /// <summary>A data frame (with its copied payload), or a FIN that must stay behind the stream's data.</summary>
    private readonly record struct OutboundFrame(YamuxHeader Header, byte[]? Payload);
}
