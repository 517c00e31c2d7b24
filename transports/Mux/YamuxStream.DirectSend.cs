using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Mux;

/// <summary>
/// Sending without the stream's pipe: a caller holding its bytes in a buffer of its own (the L4
/// pump, reading a socket) has them framed straight from it, one copy fewer per byte.
/// </summary>
public sealed partial class YamuxStream
{
    /// <summary>
    /// Frames the caller's bytes straight from its buffer, skipping the copy into the stream's
    /// pipe (the L4 pump's path). While the pump still holds bytes written through the pipe (a
    /// handshake waiting for the session's room), these go through the pipe too, behind them.
    /// Bytes in a socket's framed receive blocks (<see cref="FrameBlock"/>) are framed in place,
    /// each header written over the 12 bytes before its payload: the caller reads
    /// <paramref name="buffer"/> no more once this is called.
    /// </summary>
    /// <exception cref="ConnectionResetException">The stream was reset, or the session ended.</exception>
    public async ValueTask SendAsync(ReadOnlySequence<byte> buffer)
    {
        if (Volatile.Read(ref _pumped) != _writer.Written)
        {
            foreach (var segment in buffer)
            {
                _writer.Write(segment.Span);
            }

            if ((await _writer.FlushAsync().ConfigureAwait(false)).IsCompleted)
            {
                throw new ConnectionResetException($"Yamux stream {Id} was reset.");
            }

            return;
        }

        try
        {
            if (!await SendFramesAsync(buffer).ConfigureAwait(false))
            {
                throw new ConnectionResetException($"Yamux stream {Id} was reset.");
            }
        }
        catch (YamuxSessionClosedException ex)
        {
            throw new ConnectionResetException(ex.Message, ex);
        }
    }

    /// <summary>The largest data frame: a buffer of this size, or less, is framed whole.</summary>
    public int ChunkSize => _session.Options.MaxFrameData;

    /// <summary>Cuts <paramref name="buffer"/> into data frames as the peer's window and the session's room allow; false once the stream is reset.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> SendFramesAsync(ReadOnlySequence<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var window = await WaitForWindowAsync().ConfigureAwait(false);
            if (window < 0)
            {
                return false;
            }

            var take = (int)Math.Min(Math.Min(buffer.Length, window), _session.Options.MaxFrameData);

            // Framed in place when the payload is all in one framed block. A frame is never cut
            // short for it: that would add frames and TLS records, which cost more than the copy.
            FrameBlock? block = null;
            var start = 0;
            var framed = take <= buffer.First.Length && FrameBlock.TryGet(buffer.First, out block, out start);
            lock (_lock)
            {
                _sendWindow -= take;
            }

            if (framed)
            {
                await _session.SendFramedAsync(Id, block!.Frame(start, take)).ConfigureAwait(false);
            }
            else
            {
                _session.SendData(Id, YamuxFlags.None, buffer.Slice(0, take));
            }

            buffer = buffer.Slice(take);
        }

        return true;
    }

    /// <summary>The application's side of the output pipe, counting what it writes, so a direct send sees whether the pump has sent it all.</summary>
    private sealed class CountingWriter(PipeWriter inner) : PipeWriter
    {
        /// <summary>Bytes written; only the application writes, so only it reads this.</summary>
        public long Written { get; private set; }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes)
        {
            inner.Advance(bytes);
            Written += bytes;
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
    }
}
