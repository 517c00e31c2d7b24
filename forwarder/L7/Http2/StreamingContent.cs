using System.IO.Pipelines;
using System.Net;

namespace Forwarder.L7.Http2;

/// <summary>
/// A request body passed to the upstream as it arrives from the client, flushed after every
/// read: a gRPC client stream's messages go out one by one, not when a buffer fills, and the
/// upstream's response can start before the client has finished sending.
/// </summary>
internal sealed class StreamingContent(PipeReader body, long? length) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // SocketsHttpHandler holds an HTTP/2 request's headers back until its body is written or
        // flushed. The upstream must see the request now, not when the client's first message
        // comes: a server that answers before reading (a gRPC server stream) would wait forever.
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var result = await body.ReadAsync(cancellationToken).ConfigureAwait(false);
            foreach (var segment in result.Buffer)
            {
                await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
            }

            body.AdvanceTo(result.Buffer.End);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled)
            {
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
