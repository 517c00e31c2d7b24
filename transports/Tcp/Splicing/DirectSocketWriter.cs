using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// The output of an <see cref="EpollConnection"/>: bytes written go into pooled blocks, and a
/// flush sends them with send(2) right there on the flushing thread. No pipe in between and no
/// send loop to wake: a response written and flushed costs one system call, and the block goes
/// back to the pool, so an idle connection holds none. Only when the socket's buffer is full does
/// a flush wait, for the epoll thread to see it writable again; a flush that waits until the bytes
/// are out is the backpressure. One writer at a time, as with any <see cref="PipeWriter"/>.
/// </summary>
internal sealed class DirectSocketWriter(EpollConnection connection, MemoryPool<byte> pool) : PipeWriter
{
    /// <summary>Filled blocks waiting to be sent, oldest first, with how much of each was written.</summary>
    private readonly Queue<(IMemoryOwner<byte> Block, int Length)> _filled = new();
    private IMemoryOwner<byte>? _current;
    private int _written;

    /// <summary>Bytes of the oldest unsent block (the first filled one, else the current one) already sent.</summary>
    private int _sent;
    private long _unflushed;
    private bool _broken;

    public bool IsCompleted { get; private set; }

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _unflushed;

    public override void Advance(int bytes)
    {
        _written += bytes;
        _unflushed += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (IsCompleted)
        {
            throw new InvalidOperationException("Writing is not allowed after the output was completed.");
        }

        var size = Math.Max(sizeHint, 1);
        if (size > pool.MaxBufferSize)
        {
            throw new ArgumentOutOfRangeException(nameof(sizeHint), sizeHint, $"At most {pool.MaxBufferSize} bytes at once.");
        }

        if (_current is not null && _current.Memory.Length - _written < size)
        {
            _filled.Enqueue((_current, _written));
            _current = null;
        }

        if (_current is null)
        {
            _current = pool.Rent();
            _written = 0;
        }

        return _current.Memory[_written..];
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_broken)
        {
            // As a pipe says it: the other end is gone, stop writing. What was written is dropped.
            Release();
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        }

        if (_unflushed == 0)
        {
            return new ValueTask<FlushResult>(default(FlushResult));
        }

        // The common case: the socket takes everything at once.
        try
        {
            return TrySendAll() ? new ValueTask<FlushResult>(default(FlushResult)) : SendRestAsync();
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException)
        {
            return Broken(ex);
        }
    }

    public override void CancelPendingFlush()
    {
        // A flush waits only for the socket, and closing the connection ends that wait.
    }

    public override void Complete(Exception? exception = null)
    {
        if (!IsCompleted)
        {
            IsCompleted = true;
            connection.OutputCompleted(exception);
        }
    }

    /// <summary>Sends what is left (after <see cref="Complete"/>, before the FIN); false when the connection failed instead.</summary>
    internal async Task<bool> DrainAsync()
    {
        if (_unflushed > 0 && !_broken)
        {
            await SendRestAsync().ConfigureAwait(false);
        }

        return !_broken;
    }

    /// <summary>Returns every block to the pool; what was not sent is dropped.</summary>
    internal void Release()
    {
        while (_filled.TryDequeue(out var filled))
        {
            filled.Block.Dispose();
        }

        _current?.Dispose();
        _current = null;
        _unflushed = 0;
    }

    /// <summary>Sends from the first unsent byte on; true when all went, false when the socket is full.</summary>
    private bool TrySendAll()
    {
        while (_filled.TryPeek(out var oldest))
        {
            if (!TrySend(oldest.Block, oldest.Length))
            {
                return false;
            }

            _filled.Dequeue();
            oldest.Block.Dispose();
        }

        if (_current is not null)
        {
            if (!TrySend(_current, _written))
            {
                return false;
            }

            _current.Dispose();
            _current = null;
            _written = 0;
        }

        return true;
    }

    private bool TrySend(IMemoryOwner<byte> block, int length)
    {
        while (_sent < length)
        {
            var sent = connection.SendSome(block.Memory.Span[_sent..length]);
            if (sent < 0)
            {
                return false;
            }

            _sent += sent;
            _unflushed -= sent;
        }

        _sent = 0;
        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<FlushResult> SendRestAsync()
    {
        try
        {
            while (!TrySendAll())
            {
                await connection.WaitWritableAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException)
        {
            return await Broken(ex).ConfigureAwait(false);
        }

        return default;
    }

    /// <summary>
    /// Sending failed (the peer reset, or the connection was closed): the connection is closed in
    /// turn, its reader learns why, and this and every later flush report the output completed
    /// rather than throw, as a pipe whose reader is gone does. Kestrel relies on that.
    /// </summary>
    private ValueTask<FlushResult> Broken(Exception reason)
    {
        _broken = true;
        Release();
        connection.SendFailed(reason);
        return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
    }
}
