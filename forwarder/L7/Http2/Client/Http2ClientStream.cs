using System.Buffers;
using System.IO.Pipelines;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// One request/response exchange on an <see cref="Http2ClientConnection"/>, as its caller holds it:
/// the caller writes the request body and trailers, then reads the response head, body and
/// trailers, and disposes it. The exchange's state is pooled and goes to a later request once
/// both this caller and the connection are done with it; this handle is the caller's alone and
/// stamped with the generation it was opened in, so once disposed it can never reach the next
/// owner's exchange: disposing again does nothing, and every other member throws
/// <see cref="ObjectDisposedException"/>.
/// </summary>
/// <remarks>
/// The members that go through the connection (head, body writes, trailers, credit, cancel) check
/// the generation under its lock and are safe against a dispose on another thread. Reading the
/// body pipe is not (a pipe has one reader): reading and disposing at once is the caller's race.
/// </remarks>
internal sealed class Http2ClientStream : IAsyncDisposable
{
    private readonly Http2ClientExchange _exchange;
    private readonly int _generation;

    /// <summary>Under the connection's lock, as the exchange is opened.</summary>
    internal Http2ClientStream(Http2ClientExchange exchange)
    {
        _exchange = exchange;
        _generation = exchange.Generation;
    }

    /// <summary>The stream id.</summary>
    public int Id => Live.Id;

    /// <summary>The response's status, once <see cref="ReadResponseHeadAsync"/> completed.</summary>
    public int Status => Live.Status;

    /// <summary>The response head's fields, pseudo-headers included, once <see cref="ReadResponseHeadAsync"/> completed.</summary>
    public Http2HeaderList ResponseHeaders => Live.ResponseHeaders;

    /// <summary>The response trailers (gRPC's grpc-status among them), once the body has been read to its end; empty if none came.</summary>
    public Http2HeaderList ResponseTrailers => Live.ResponseTrailers;

    /// <summary>The server has ended its side (read without the connection's lock: a hint, as a stream may end any moment).</summary>
    internal bool RemoteEnded => Live.RemoteEnded;

    /// <summary>The pooled state behind the handle, for the connection (and tests) only: it outlives the lease.</summary>
    internal Http2ClientExchange Exchange => _exchange;

    private Http2ClientExchange Live
    {
        get
        {
            ObjectDisposedException.ThrowIf(_exchange.Generation != _generation, this);
            return _exchange;
        }
    }

    /// <summary>Waits for the response head (interim 1xx heads are skipped): then <see cref="Status"/> and <see cref="ResponseHeaders"/> hold it.</summary>
    /// <exception cref="Http2ClientException">The stream was reset or the connection ended first.</exception>
    public ValueTask ReadResponseHeadAsync() => _exchange.Connection.WaitForHeadAsync(_exchange, _generation);

    /// <summary>
    /// The response body received so far. Give back what was used with <see cref="AdvanceBody(in ReadOnlySequence{byte}, SequencePosition)"/>,
    /// which is also what returns flow-control credit to the server. <see cref="ReadResult.IsCompleted"/>
    /// means the body has ended and <see cref="ResponseTrailers"/> are in.
    /// </summary>
    public ValueTask<ReadResult> ReadBodyAsync()
        => _exchange.Generation == _generation ? _exchange.ReadBodyAsync() : ValueTask.FromException<ReadResult>(new ObjectDisposedException(GetType().FullName));

    /// <summary>Marks the body up to <paramref name="consumed"/> as used; its bytes go back to the server as window credit.</summary>
    public void AdvanceBody(in ReadOnlySequence<byte> buffer, SequencePosition consumed) => Live.AdvanceBody(_generation, buffer, consumed);

    /// <summary>Marks the whole buffer as used.</summary>
    public void AdvanceBody(in ReadOnlySequence<byte> buffer) => AdvanceBody(buffer, buffer.End);

    /// <summary>
    /// Sends request body bytes as DATA, as the send windows allow (waiting for WINDOW_UPDATE when
    /// they are spent), with END_STREAM on the last frame when <paramref name="endStream"/>. The
    /// caller may reuse <paramref name="data"/> once this completes.
    /// </summary>
    public ValueTask WriteBodyAsync(ReadOnlyMemory<byte> data, bool endStream = false) => _exchange.Connection.WriteDataAsync(_exchange, _generation, data, endStream);

    /// <summary>Ends the request: with trailers (a HEADERS frame with END_STREAM), or with an empty DATA frame with END_STREAM.</summary>
    public ValueTask EndRequestAsync(Http2HeaderList? trailers = null)
        => trailers is { Count: > 0 } ? _exchange.Connection.WriteTrailers(_exchange, _generation, trailers) : WriteBodyAsync(default, endStream: true);

    /// <summary>From now on the stream's window grows past its opening size only as far as <paramref name="budget"/> allows (shared with the client connection's other streams).</summary>
    public void UseBudget(Http2ResponseBudget budget) => _exchange.Connection.Bind(_exchange, _generation, budget);

    /// <summary>Abandons the exchange: RST_STREAM CANCEL unless it already ended both ways, and any wait fails.</summary>
    public void Cancel() => ObjectDisposedException.ThrowIf(!_exchange.Connection.TryCancel(_exchange, _generation), this);

    /// <summary>Releases the stream (cancelling it if still open) for reuse; again, nothing.</summary>
    public ValueTask DisposeAsync()
    {
        _exchange.EndLease(_generation);
        return ValueTask.CompletedTask;
    }
}
