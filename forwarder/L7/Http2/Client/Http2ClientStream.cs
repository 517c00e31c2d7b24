using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// One request/response exchange on an <see cref="Http2ClientConnection"/>: the caller writes the
/// request body and trailers, then reads the response head, body and trailers. Objects are pooled
/// per connection and reused once both the caller (by disposing) and the connection are done.
/// All protocol state is guarded by the connection's lock; only the connection's reader writes
/// into the body pipe.
/// </summary>
internal sealed class Http2ClientStream : IAsyncDisposable
{
    private readonly Http2ClientConnection _connection;
    private readonly Http2StreamSignal _headSignal = new();
    private readonly Http2StreamSignal _windowSignal = new();
    private CancellationTokenRegistration _cancellation;
    private int _references;
    private int _leased;

    internal Http2ClientStream(Http2ClientConnection connection, Http2ClientOptions options)
    {
        _connection = connection;
        Body = new Pipe(new PipeOptions(
            options.Pool,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0,
            useSynchronizationContext: false));
    }

    /// <summary>The stream id; 0 while pooled.</summary>
    public int Id { get; private set; }

    /// <summary>The response's status, once <see cref="ReadResponseHeadAsync"/> completed.</summary>
    public int Status { get; internal set; }

    /// <summary>The response head's fields, pseudo-headers included, once <see cref="ReadResponseHeadAsync"/> completed.</summary>
    public Http2HeaderList ResponseHeaders { get; } = new();

    /// <summary>The response trailers (gRPC's grpc-status among them), once the body has been read to its end; empty if none came.</summary>
    public Http2HeaderList ResponseTrailers { get; } = new();

    // The fields below are the connection's, under its lock.
    internal Pipe Body { get; }

    internal Http2SendWindow SendWindow;

    internal Http2ReceiveWindow ReceiveWindow;

    /// <summary>Body bytes delivered and not yet consumed: the connection-level credit still owed.</summary>
    internal int Buffered { get; set; }

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

    /// <summary>Waits for the response head (interim 1xx heads are skipped): then <see cref="Status"/> and <see cref="ResponseHeaders"/> hold it.</summary>
    /// <exception cref="Http2ClientException">The stream was reset or the connection ended first.</exception>
    public ValueTask ReadResponseHeadAsync() => _connection.WaitForHeadAsync(this);

    /// <summary>
    /// The response body received so far. Give back what was used with <see cref="AdvanceBody(in ReadOnlySequence{byte}, SequencePosition)"/>,
    /// which is also what returns flow-control credit to the server. <see cref="ReadResult.IsCompleted"/>
    /// means the body has ended and <see cref="ResponseTrailers"/> are in.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReadResult> ReadBodyAsync()
    {
        var result = await Body.Reader.ReadAsync().ConfigureAwait(false);
        if (result.IsCanceled)
        {
            Body.Reader.AdvanceTo(result.Buffer.Start);
            throw Error ?? new Http2ClientException("The stream was cancelled.", Http2ErrorCode.Cancel, canRetry: false);
        }

        return result;
    }

    /// <summary>Marks the body up to <paramref name="consumed"/> as used; its bytes go back to the server as window credit.</summary>
    public void AdvanceBody(in ReadOnlySequence<byte> buffer, SequencePosition consumed)
    {
        var length = buffer.Slice(0, consumed).Length;
        Body.Reader.AdvanceTo(consumed, buffer.End);
        if (length > 0)
        {
            _connection.Consumed(this, (int)length);
        }
    }

    /// <summary>Marks the whole buffer as used.</summary>
    public void AdvanceBody(in ReadOnlySequence<byte> buffer) => AdvanceBody(buffer, buffer.End);

    /// <summary>
    /// Sends request body bytes as DATA, as the send windows allow (waiting for WINDOW_UPDATE when
    /// they are spent), with END_STREAM on the last frame when <paramref name="endStream"/>. The
    /// caller may reuse <paramref name="data"/> once this completes.
    /// </summary>
    public ValueTask WriteBodyAsync(ReadOnlyMemory<byte> data, bool endStream = false) => _connection.WriteDataAsync(this, data, endStream);

    /// <summary>Ends the request: with trailers (a HEADERS frame with END_STREAM), or with an empty DATA frame with END_STREAM.</summary>
    public ValueTask EndRequestAsync(Http2HeaderList? trailers = null)
        => trailers is { Count: > 0 } ? _connection.WriteTrailers(this, trailers) : _connection.WriteDataAsync(this, default, endStream: true);

    /// <summary>Abandons the exchange: RST_STREAM CANCEL unless it already ended both ways, and any wait fails.</summary>
    public void Cancel() => _connection.Cancel(this);

    /// <summary>Releases the stream (cancelling it if still open) for reuse.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _leased, 0) == 0)
        {
            // Disposed already: the caller's reference was let go once.
            return ValueTask.CompletedTask;
        }

        Cancel();
        _connection.Discard(this);
        _cancellation.Dispose();
        _cancellation = default;
        Release();
        return ValueTask.CompletedTask;
    }

    /// <summary>Taken from the pool for a new exchange: held by the caller and by the connection's table.</summary>
    internal void Open(int id, int sendWindow, int receiveWindow, CancellationToken cancellationToken)
    {
        Id = id;
        SendWindow = new Http2SendWindow(sendWindow);
        ReceiveWindow = new Http2ReceiveWindow(receiveWindow);
        _references = 2;
        _leased = 1;
        if (cancellationToken.CanBeCanceled)
        {
            _cancellation = cancellationToken.UnsafeRegister(static state => ((Http2ClientStream)state!).Cancel(), this);
        }
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
        ResponseHeaders.Clear();
        ResponseTrailers.Clear();
        Id = 0;
        Status = 0;
        Buffered = 0;
        LocalEnded = RemoteEnded = HeadReceived = Closed = HeadWaiting = WindowWaiting = false;
        Error = null;
        _connection.Return(this);
    }
}
