using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// One request stream of an <see cref="Http2ServerConnection"/>, as its handler sees it: the
/// request's header fields and body, and the response's head, body and trailers. Pooled by the
/// connection: valid from the handler's call until the task it returned completes.
/// </summary>
/// <remarks>
/// The request body arrives through a pipe the connection's reader fills (bounded by the
/// stream's receive window, credited back as the handler advances past data); the response body
/// leaves through a pipe the connection's writer drains as the peer's windows allow, whose
/// pause threshold is the handler's backpressure. Every state change happens under the
/// connection's lock.
/// </remarks>
internal sealed class Http2ServerStream
{
    private readonly Http2ServerConnection _connection;
    private readonly Pipe _request;
    private readonly Pipe _response;
    private readonly Http2RequestBody _body;
    private readonly Action _handlerCompleted;
    private CancellationTokenSource _aborted = new();
    private ValueTask _handling;

    public Http2ServerStream(Http2ServerConnection connection, Http2ServerOptions options)
    {
        _connection = connection;
        _request = new Pipe(new PipeOptions(pauseWriterThreshold: 0, readerScheduler: PipeScheduler.ThreadPool, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        _response = new Pipe(new PipeOptions(
            pauseWriterThreshold: options.ResponseBufferSize,
            resumeWriterThreshold: options.ResponseBufferSize / 2,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.ThreadPool,
            useSynchronizationContext: false));
        _body = new Http2RequestBody(this, _request.Reader);
        _handlerCompleted = OnHandlerCompleted;
    }

    public int Id { get; private set; }

    public Http2HeaderFields RequestHeaders { get; internal set; } = new();

    /// <summary>The request's trailers once its body has ended with them; empty otherwise.</summary>
    public Http2HeaderFields RequestTrailers { get; internal set; } = new();

    public ReadOnlySpan<byte> Method => RequestHeaders.Get(":method"u8);

    public ReadOnlySpan<byte> Path => RequestHeaders.Get(":path"u8);

    public ReadOnlySpan<byte> Authority => RequestHeaders.Get(":authority"u8);

    /// <summary>The request body; reading past its end completes, a reset stream throws.</summary>
    public PipeReader RequestBody => _body;

    /// <summary>Cancelled when the stream is reset (by either side) or the connection ends.</summary>
    public CancellationToken Aborted => _aborted.Token;

    // Protocol state, under the connection's lock.
    internal bool Active { get; set; }

    internal bool RemoteClosed { get; set; }

    internal bool LocalClosed { get; set; }

    internal bool HeadersSent { get; set; }

    internal bool Ending { get; set; }

    internal bool Queued { get; set; }

    internal bool HandlerDone { get; set; }

    internal bool WasReset { get; set; }

    /// <summary>The handler completed the request body's reader: DATA still coming is dropped and credited at once.</summary>
    internal bool ReaderDone { get; set; }

    internal Http2ReceiveWindow ReceiveWindow;

    /// <summary>Body bytes in the request pipe the handler has not consumed: connection credit still owed to the peer.</summary>
    internal int Buffered { get; set; }

    internal Http2SendWindow SendWindow;

    /// <summary>The response trailers' encoded block.</summary>
    internal ArrayBufferWriter<byte> Trailers { get; private set; } = new();

    internal PipeWriter RequestWriter => _request.Writer;

    internal PipeReader ResponseReader => _response.Reader;

    /// <summary>Writes the response's head: <paramref name="status"/> and <paramref name="headers"/> (none of them pseudo-headers); a 1xx status is an interim head, bare, before the final one.</summary>
    public void WriteHeaders(int status, Http2HeaderFields? headers = null, bool endStream = false) => _connection.WriteResponseHeaders(this, status, headers, endStream);

    /// <summary>Queues response body; waits while the stream's buffer is full. False once the stream was reset.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> WriteAsync(ReadOnlyMemory<byte> data)
    {
        if (WasReset)
        {
            return false;
        }

        _response.Writer.Write(data.Span);
        var flush = _response.Writer.FlushAsync();
        _connection.ResponseDataQueued(this);
        var result = await flush.ConfigureAwait(false);
        return !result.IsCompleted;
    }

    /// <summary>
    /// Sends a whole small response at once (head, body, trailers if any, END_STREAM) when the
    /// send windows take its body now. False, with nothing sent, otherwise (or once the stream was
    /// reset): then <see cref="WriteHeaders"/>, <see cref="WriteAsync"/> and <see cref="Complete"/> as usual.
    /// </summary>
    public bool TryWriteResponse(int status, Http2HeaderFields headers, in ReadOnlySequence<byte> body, Http2HeaderFields? trailers = null)
        => _connection.TryWriteWholeResponse(this, status, headers, body, trailers);

    /// <summary>Ends the response, with trailers if any given (an empty list sends none).</summary>
    public void Complete(Http2HeaderFields? trailers = null)
    {
        _response.Writer.Complete();
        _connection.CompleteResponse(this, trailers);
    }

    /// <summary>Resets the stream with <paramref name="code"/> (RST_STREAM); the request body ends with an error.</summary>
    public void Reset(Http2ErrorCode code) => _connection.ResetByHandler(this, code);

    /// <summary>Tells the client to take no more streams to this connection (<see cref="Http2ServerConnection.Shutdown"/>); this one and those before it finish.</summary>
    public void ShutdownConnection() => _connection.Shutdown();

    internal void Open(int id, int receiveWindow, int sendWindow)
    {
        Id = id;
        ReceiveWindow = new Http2ReceiveWindow(receiveWindow);
        SendWindow = new Http2SendWindow(sendWindow);
        Active = true;
        RemoteClosed = LocalClosed = HeadersSent = Ending = Queued = HandlerDone = WasReset = ReaderDone = false;
        Buffered = 0;
        Trailers.ResetWrittenCount();
        RequestTrailers.Clear();
    }

    /// <summary>Runs the handler; the connection hears when it is done (without a closure or task per request).</summary>
    internal void Start(IHttp2StreamHandler handler)
    {
        try
        {
            _handling = handler.HandleAsync(this);
        }
        catch (Exception e)
        {
            _handling = ValueTask.FromException(e);
        }

        if (_handling.IsCompleted)
        {
            OnHandlerCompleted();
        }
        else
        {
            _handling.GetAwaiter().UnsafeOnCompleted(_handlerCompleted);
        }
    }

    /// <summary>Under the connection's lock: the stream is reset or the connection ended.</summary>
    internal void Abort()
    {
        WasReset = true;
        RemoteClosed = LocalClosed = true;
        _request.Writer.Complete(new IOException($"HTTP/2 stream {Id} was reset."));
        _response.Reader.Complete();
        _aborted.Cancel();
    }

    /// <summary>The handler consumed <paramref name="length"/> bytes of request body.</summary>
    internal void BodyConsumed(long length) => _connection.RequestBodyConsumed(this, (int)length);

    /// <summary>The handler completed the request body's reader.</summary>
    internal void BodyReaderCompleted() => _connection.RequestBodyAbandoned(this);

    /// <summary>Readies the stream for its next request: every pipe end completed, then reset; header buffers grown past <see cref="Http2HeaderFields.RetainedBytes"/> dropped.</summary>
    internal void Recycle()
    {
        _request.Writer.Complete();
        _request.Reader.Complete();
        _response.Writer.Complete();
        _response.Reader.Complete();
        _request.Reset();
        _response.Reset();
        _body.Reset();
        RequestHeaders.Recycle();
        RequestTrailers.Recycle();
        if (Trailers.Capacity > Http2HeaderFields.RetainedBytes)
        {
            Trailers = new ArrayBufferWriter<byte>();
        }

        _handling = default;
        if (!_aborted.TryReset())
        {
            _aborted.Dispose();
            _aborted = new CancellationTokenSource();
        }
    }

    /// <summary>Leaves the connection's pool for good: the header buffers go back to the array pool.</summary>
    internal void Discard()
    {
        RequestHeaders.Release();
        RequestTrailers.Release();
    }

    private void OnHandlerCompleted()
    {
        Exception? failure = null;
        try
        {
            _handling.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            failure = e;
        }

        _connection.HandlerCompleted(this, failure);
    }
}
