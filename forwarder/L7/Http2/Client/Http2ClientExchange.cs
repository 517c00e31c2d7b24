using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The pooled state of one request/response exchange on an <see cref="Http2ClientConnection"/>:
/// reused once both the caller (disposing its <see cref="Http2ClientStream"/>) and the connection
/// are done. The caller never holds this object, only a handle stamped with the
/// <see cref="Generation"/> it was opened in; the generation moves on when that caller lets go, so
/// a handle kept past its dispose no longer matches, whoever holds the object next. All protocol
/// state is guarded by the connection's lock; only the connection's reader writes into the body pipe.
/// </summary>
internal sealed class Http2ClientExchange
{
    private readonly Http2ClientConnection _connection;
    private readonly Http2StreamSignal _headSignal = new();
    private readonly Http2StreamSignal _windowSignal = new();
    private CancellationTokenRegistration _cancellation;
    private int _references;
    private int _generation;

    internal Http2ClientExchange(Http2ClientConnection connection, Http2ClientOptions options)
    {
        _connection = connection;
        StarvedEntry = new((this, 0));
        Body = new Pipe(new PipeOptions(
            options.Pool,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0,
            useSynchronizationContext: false));
    }

    /// <summary>The caller's lease: a handle whose generation differs was disposed, and must not act.</summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>The stream id; 0 while pooled.</summary>
    public int Id { get; private set; }

    public int Status { get; internal set; }

    public Http2HeaderList ResponseHeaders { get; } = new();

    public Http2HeaderList ResponseTrailers { get; } = new();

    // The fields below are the connection's, under its lock.
    internal Pipe Body { get; }

    internal Http2SendWindow SendWindow;

    internal Http2StreamCredit Credit;

    /// <summary>The client connection's budget the stream's top-ups come from; null for a stream without one (its top-ups are never held back).</summary>
    internal Http2ResponseBudget? Budget { get; set; }

    /// <summary>The credit past the opening window this stream holds of <see cref="Budget"/>.</summary>
    internal long BudgetHeld { get; set; }

    /// <summary>Queued in <see cref="Budget"/> for a top-up it was refused.</summary>
    internal bool Starved { get; set; }

    /// <summary>Its place in <see cref="Budget"/>'s queue (under the budget's lock), reused: unlinked when the lease ends, so a reset stream is not kept queued.</summary>
    internal LinkedListNode<(Http2ClientExchange Stream, int Generation)> StarvedEntry { get; }

    internal bool LocalEnded { get; set; }

    internal bool RemoteEnded { get; set; }

    internal bool HeadReceived { get; set; }

    /// <summary>Out of the connection's table: reset, or ended both ways.</summary>
    internal bool Closed { get; set; }

    internal bool HeadWaiting { get; set; }

    internal bool WindowWaiting { get; set; }

    /// <summary>Why the stream failed; set once.</summary>
    internal Exception? Error { get; set; }

    internal Http2StreamSignal HeadSignal => _headSignal;

    internal Http2StreamSignal WindowSignal => _windowSignal;

    internal Http2ClientConnection Connection => _connection;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<ReadResult> ReadBodyAsync()
    {
        var result = await Body.Reader.ReadAsync().ConfigureAwait(false);
        if (result.IsCanceled)
        {
            Body.Reader.AdvanceTo(result.Buffer.Start);
            throw Error ?? new Http2ClientException("The stream was cancelled.", Http2ErrorCode.Cancel, canRetry: false);
        }

        return result;
    }

    internal void AdvanceBody(int generation, in ReadOnlySequence<byte> buffer, SequencePosition consumed)
    {
        var length = buffer.Slice(0, consumed).Length;
        Body.Reader.AdvanceTo(consumed, buffer.End);
        if (length > 0)
        {
            _connection.Consumed(this, generation, (int)length);
        }
    }

    /// <summary>Taken from the pool for a new exchange, under the connection's lock: held by the caller and by the connection's table.</summary>
    internal void Open(int id, int sendWindow, int receiveWindow)
    {
        Id = id;
        SendWindow = new Http2SendWindow(sendWindow);
        Credit = new Http2StreamCredit(receiveWindow);
        _references = 2;
    }

    /// <summary>
    /// Outside the lock, once the HEADERS are written: cancelling <paramref name="cancellationToken"/>
    /// resets the stream. Registered only then because a token already cancelled runs the reset
    /// inline, which must neither precede the HEADERS nor run inside the open.
    /// </summary>
    internal void Watch(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _cancellation = cancellationToken.UnsafeRegister(static state =>
            {
                var exchange = (Http2ClientExchange)state!;
                exchange._connection.TryCancel(exchange, exchange.Generation);
            }, this);
        }
    }

    /// <summary>
    /// The caller's handle of <paramref name="generation"/> lets go: cancels the stream if still
    /// open and releases the caller's reference. False (and nothing done) if that lease has ended already.
    /// </summary>
    internal bool EndLease(int generation)
    {
        if (Interlocked.CompareExchange(ref _generation, generation + 1, generation) != generation)
        {
            return false;
        }

        // Unregistered first: a token firing now is waited for, so it cannot reset a later lease's stream.
        _cancellation.Dispose();
        _cancellation = default;
        _connection.TryCancel(this, generation + 1);
        _connection.Unbind(this);
        Release();
        return true;
    }

    internal void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Drops one holder; the last one resets the stream and returns it to the connection's pool.</summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0)
        {
            return;
        }

        Body.Reader.Complete();
        Body.Writer.Complete();
        Body.Reset();
        ResponseHeaders.Recycle();
        ResponseTrailers.Recycle();
        Id = 0;
        Status = 0;
        LocalEnded = RemoteEnded = HeadReceived = Closed = HeadWaiting = WindowWaiting = false;
        Error = null;
        _connection.Return(this);
    }
}
