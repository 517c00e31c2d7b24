using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Upstream;

/// <summary>
/// A dialled connection as the <see cref="Stream"/> <see cref="SocketsHttpHandler"/>'s connect
/// callback hands back: reads and writes go through the connection's pipes, and disposing the
/// stream closes the connection. A reset or abort surfaces as an <see cref="IOException"/>, as
/// the handler expects of a socket.
/// </summary>
internal sealed class ConnectionStream(ConnectionContext connection) : Stream
{
    private readonly Stream _input = connection.Transport.Input.AsStream(leaveOpen: true);
    private readonly Stream _output = connection.Transport.Output.AsStream(leaveOpen: true);
    private int _disposed;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (ConnectionAbortedException ex)
        {
            throw new IOException(ex.Message, ex);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            await _output.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (ConnectionAbortedException ex)
        {
            throw new IOException(ex.Message, ex);
        }
    }

    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    public override Task FlushAsync(CancellationToken cancellationToken) => _output.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // The handler disposes synchronously; the close itself may finish in the background.
            _ = CloseAsync(connection);
        }

        base.Dispose(disposing);
    }

    private static async Task CloseAsync(ConnectionContext connection)
    {
        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or ConnectionAbortedException)
        {
            // Closing a connection that already failed: it is gone either way.
        }
    }
}
