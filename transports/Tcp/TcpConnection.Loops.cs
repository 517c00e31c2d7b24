using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <content>The pipes and the loops that move bytes between them and the socket, made on first use; the direct send.</content>
public sealed partial class TcpConnection
{
    public ValueTask SendAsync(ReadOnlySequence<byte> buffer)
    {
        var pending = Sender.SendAsync(Socket, SocketSender.FirstSegments(buffer, out var rest));
        return pending.IsCompletedSuccessfully && rest.IsEmpty ? default : AwaitSendAsync(pending, rest);
    }

    private void EnsureStarted()
    {
        if (Volatile.Read(ref _state) != NotStarted)
        {
            return;
        }

        Pipe receivePipe, sendPipe;

        // Under the lock that also guards taking the socket: whoever sees the state running sees
        // the pipes made, too.
        lock (_shutdownLock)
        {
            if (_state != NotStarted)
            {
                return;
            }

            // The receive pipe's blocks may be framed (FrameBlock): asking for a block less its
            // headroom, a framed block is as large as asked for.
            receivePipe = new Pipe(PipeOptionsFor(_receivePool, _pool.MaxBufferSize - FrameBlock.Headroom));
            sendPipe = new Pipe(PipeOptionsFor(_pool, _pool.MaxBufferSize));
            _transport ??= new DuplexPipe(receivePipe.Reader, sendPipe.Writer);
            Volatile.Write(ref _state, Running);
        }

        _receiving = ReceiveLoopAsync(receivePipe.Writer);
        _sending = SendLoopAsync(sendPipe.Reader);
    }

    /// <summary>
    /// Inline schedulers: a receive completion runs the reader, which may write and flush to
    /// another connection's send pipe, all on one thread with no queueing between hops.
    /// </summary>
    private PipeOptions PipeOptionsFor(MemoryPool<byte> pool, int segmentSize) => new(
        pool,
        readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: _options.MaxBufferedBytes,
        resumeWriterThreshold: _options.MaxBufferedBytes / 2,
        minimumSegmentSize: segmentSize,
        useSynchronizationContext: false);

    /// <summary>
    /// Made on the first send: a connection has one writer at a time (its send loop or a direct
    /// sender), so the first send cannot race another.
    /// </summary>
    private SocketSender Sender => _sender ??= new SocketSender();

    private async Task ReceiveLoopAsync(PipeWriter writer)
    {
        // Half a block, as Kestrel does: small reads share a block instead of each taking a new one,
        // so buffered memory stays close to the bytes buffered.
        var minimumReceiveSize = _pool.MaxBufferSize / 2;
        var waitForData = _options.WaitForDataBeforeAllocatingBuffer;
        Exception? error = null;
        try
        {
            while (true)
            {
                if (waitForData)
                {
                    await Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                }

                var buffer = writer.GetMemory(minimumReceiveSize);
                if (buffer.Length > _maxReceiveSize)
                {
                    buffer = buffer[.._maxReceiveSize];
                }

                var received = await Socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (received == 0)
                {
                    // A FIN, or our own abort: shutting the socket down ends a pending receive
                    // with zero bytes too, and that must not read as the peer's orderly close.
                    error = Volatile.Read(ref _abortReason);
                    break;
                }

                writer.Advance(received);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            error = TranslateError(ex);
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    private async Task SendLoopAsync(PipeReader reader)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    await SendAsync(buffer).ConfigureAwait(false);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            ShutdownSend();
        }
        catch (Exception ex)
        {
            // A peer that reset while we sent is reset in turn, so the reset stays a reset for the
            // receive loop too; other failures close the socket.
            error = TranslateError(ex);
            CloseSocket(error, reset: error is ConnectionResetException);
        }
        finally
        {
            await reader.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitSendAsync(ValueTask pending, ReadOnlySequence<byte> rest)
    {
        try
        {
            await pending.ConfigureAwait(false);
            while (!rest.IsEmpty)
            {
                await Sender.SendAsync(Socket, SocketSender.FirstSegments(rest, out rest)).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            throw TranslateError(ex);
        }
    }

    private Exception TranslateError(Exception ex)
    {
        if (_abortReason is not null)
        {
            return _abortReason;
        }

        return ex switch
        {
            SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted }
                => new ConnectionResetException(ex.Message, ex),
            SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument }
                or ObjectDisposedException => new ConnectionAbortedException("The connection was closed.", ex),
            ConnectionResetException or ConnectionAbortedException => ex,
            _ => new IOException(ex.Message, ex),
        };
    }
}
