using System.Buffers;
using System.IO.Pipelines;

namespace Forwarder.Transports.Quic;

/// <summary>
/// One bidirectional QUIC stream. Received bytes wait in a pipe bounded by the stream's flow-control
/// window, which is extended only as the reader consumes them; writes wait while more than
/// <see cref="QuicClientOptions.StreamSendBuffer"/> bytes are unacknowledged.
/// </summary>
internal sealed class QuicStream
{
    private readonly QuicConnection _connection;
    // No pause threshold: the advertised window is the bound, and the callback cannot wait.
    private readonly Pipe _received = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private TaskCompletionSource? _spaceWaiter;

    public QuicConnection Connection => _connection;

    internal QuicStream(QuicConnection connection, long id, QuicChunkPool pool)
    {
        _connection = connection;
        Id = id;
        Send = new QuicSendBuffer(pool);
    }

    public long Id { get; }

    internal QuicSendBuffer Send { get; }

    /// <summary>Reads up to <paramref name="destination"/>'s length; 0 means the peer finished the stream.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        var result = await _received.Reader.ReadAsync(cancellationToken);
        var buffer = result.Buffer;
        var n = (int)Math.Min(buffer.Length, destination.Length);
        buffer.Slice(0, n).CopyTo(destination.Span);
        _received.Reader.AdvanceTo(buffer.GetPosition(n));
        if (n > 0)
        {
            _connection.OnConsumed(Id, n);
        }

        return n;
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty)
        {
            var (accepted, waiter) = _connection.Write(this, data.Span);
            data = data[accepted..];
            if (waiter is not null)
            {
                await waiter.WaitAsync(cancellationToken);
            }
        }
    }

    /// <summary>Sends FIN after the bytes written so far.</summary>
    public void CompleteWrites() => _connection.CompleteWrites(this);

    /// <summary>Resets the stream both ways; pending and later reads and writes fail.</summary>
    public void Abort(ulong errorCode = 0) => _connection.AbortStream(this, errorCode);

    /// <summary>Called under the connection's lock: arms a waiter the next ack (or failure) releases.</summary>
    internal Task WaitForSpace()
    {
        _spaceWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _spaceWaiter.Task;
    }

    internal void ReleaseSpaceWaiter(Exception? error = null)
    {
        var waiter = _spaceWaiter;
        _spaceWaiter = null;
        if (error is null)
        {
            waiter?.TrySetResult();
        }
        else
        {
            waiter?.TrySetException(error);
        }
    }

    internal void OnReceived(ReadOnlySpan<byte> data, bool fin)
    {
        if (!data.IsEmpty)
        {
            _received.Writer.Write(data);
            _ = _received.Writer.FlushAsync();
        }

        if (fin)
        {
            _received.Writer.Complete();
        }
    }

    /// <summary>Closed, reset or aborted: nothing more may be written.</summary>
    internal bool IsClosed { get; private set; }

    internal void OnClosed(Exception? error)
    {
        IsClosed = true;
        _received.Writer.Complete(error);
        ReleaseSpaceWaiter(error ?? new QuicException($"stream {Id} closed"));
        Send.Release();
    }
}
