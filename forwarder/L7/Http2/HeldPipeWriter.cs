using System.IO.Pipelines;

namespace Forwarder.L7.Http2;

/// <summary>
/// The output Kestrel writes a lent connection through: every call passes on, except that its
/// completion is held back while <paramref name="held"/> says so, leaving the connection open
/// for the GOAWAY the front writes after Kestrel is done.
/// </summary>
internal sealed class HeldPipeWriter(PipeWriter inner, Func<bool> held) : PipeWriter
{
    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) => inner.WriteAsync(source, cancellationToken);

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null)
    {
        if (!held())
        {
            inner.Complete(exception);
        }
    }

    public override ValueTask CompleteAsync(Exception? exception = null) => held() ? ValueTask.CompletedTask : inner.CompleteAsync(exception);
}
