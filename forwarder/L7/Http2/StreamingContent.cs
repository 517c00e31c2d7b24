using System.IO.Pipelines;
using System.Net;

namespace Forwarder.L7.Http2;

/// <summary>How reading the client's request body went wrong; the client's doing, never the upstream's.</summary>
internal enum ClientBodyFault
{
    None,

    /// <summary>The body grew past the listener's maxBodySize.</summary>
    TooLarge,

    /// <summary>Reading it failed: the client reset the stream or sent less than it declared.</summary>
    Failed,
}

/// <summary>
/// A request body passed to the upstream as it arrives from the client, flushed after every
/// read: a gRPC client stream's messages go out one by one, not when a buffer fills, and the
/// upstream's response can start before the client has finished sending. It enforces the
/// listener's maxBodySize as bytes arrive, and records whether a failure was the client's, so
/// the upstream is not blamed for it.
/// </summary>
/// <param name="maxSize">The most bytes the body may have; null for no limit.</param>
internal sealed class StreamingContent(PipeReader body, long? length, long? maxSize) : HttpContent
{
    private long _read;
    private volatile bool _waitingOnClient;

    /// <summary>True once the handler began to read the body: from then on it cannot be sent again.</summary>
    public bool Started { get; private set; }

    /// <summary>True when the whole body was read from the client.</summary>
    public bool Completed { get; private set; }

    /// <summary>True while a read of the client's body is pending: an exchange that stalls now is waiting on the client.</summary>
    public bool WaitingOnClient => _waitingOnClient;

    public ClientBodyFault Fault { get; private set; }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        Started = true;

        // SocketsHttpHandler holds an HTTP/2 request's headers back until its body is written or
        // flushed. The upstream must see the request now, not when the client's first message
        // comes: a server that answers before reading (a gRPC server stream) would wait forever.
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            ReadResult result;

            // Left set when the read is cancelled: the exchange that gave up was waiting on the client.
            _waitingOnClient = true;
            try
            {
                result = await body.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Fault = ClientBodyFault.Failed;
                throw new IOException("The client's request body broke off.", ex);
            }

            _waitingOnClient = false;

            _read += result.Buffer.Length;
            if (_read > maxSize)
            {
                Fault = ClientBodyFault.TooLarge;
                body.AdvanceTo(result.Buffer.End);
                throw new IOException($"The client's request body is larger than maxBodySize ({maxSize} bytes).");
            }

            foreach (var segment in result.Buffer)
            {
                await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
            }

            body.AdvanceTo(result.Buffer.End);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled)
            {
                Completed = result.IsCompleted;
                return;
            }
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override bool TryComputeLength(out long computed)
    {
        // Known when the client said (Content-Length); otherwise the upstream request streams.
        computed = length ?? 0;
        return length is not null;
    }
}
