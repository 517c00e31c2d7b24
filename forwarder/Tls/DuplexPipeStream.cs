using System.Buffers;
using System.IO.Pipelines;

namespace Forwarder.Tls;

/// <summary>
/// A connection's transport as one <see cref="Stream"/>, for <see cref="System.Net.Security.SslStream"/>
/// to carry its records over. Every write is flushed at once (the handshake relies on it) until
/// <see cref="BatchWrites"/>: from then on records only queue, and the flush that ends a batch
/// (SslStream passes its own flush down) sends them all in one go.
/// </summary>
internal sealed class DuplexPipeStream(IDuplexPipe transport) : Stream
{
    private readonly Stream _input = transport.Input.AsStream(leaveOpen: true);
    private readonly Stream _output = transport.Output.AsStream(leaveOpen: true);
    private bool _batching;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>From now on writes wait for the next flush; call once the handshake is done, with every later write followed by a flush.</summary>
    public void BatchWrites() => _batching = true;

    public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => _input.ReadAsync(buffer, offset, count, cancellationToken);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => _input.ReadAsync(buffer, cancellationToken);

    public override void Write(byte[] buffer, int offset, int count)
    {
        if (_batching)
        {
            transport.Output.Write(buffer.AsSpan(offset, count));
            return;
        }

        _output.Write(buffer, offset, count);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_batching)
        {
            transport.Output.Write(buffer.Span);
            return default;
        }

        return _output.WriteAsync(buffer, cancellationToken);
    }

    public override void Flush() => _output.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _output.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
