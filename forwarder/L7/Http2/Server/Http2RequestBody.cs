using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// The request body as the handler reads it: the stream's pipe, with each advance past data
/// reported so the connection credits the peer's window back (RFC 9113 6.9) only as the handler
/// actually takes it.
/// </summary>
internal sealed class Http2RequestBody(Http2ServerStream stream, PipeReader inner) : PipeReader
{
    private System.Buffers.ReadOnlySequence<byte> _last;

    public override bool TryRead(out ReadResult result)
    {
        var read = inner.TryRead(out result);
        _last = result.Buffer;
        return read;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var result = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
        _last = result.Buffer;
        return result;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        var length = _last.Slice(_last.Start, consumed).Length;
        _last = default;
        inner.AdvanceTo(consumed, examined);
        if (length > 0)
        {
            stream.BodyConsumed(length);
        }
    }

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        inner.Complete(exception);
        stream.BodyReaderCompleted();
    }

    internal void Reset() => _last = default;
}
