using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Server;

namespace Forwarder.L7.Http2.Proxy;

/// <content>The client's request body streamed upstream.</content>
internal sealed partial class Http2ProxyHandler
{
    /// <summary>Stops the request body pump (its read of the client's body, if waiting, is cancelled) and waits for it.</summary>
    private static async ValueTask SettleAsync(Http2ServerStream stream, Task? pump)
    {
        if (pump is null || pump.IsCompleted)
        {
            return;
        }

        stream.RequestBody.CancelPendingRead();
        await pump.ConfigureAwait(false);
    }

    /// <summary>
    /// Streams the client's request body (and trailers) upstream as it comes; never throws. What
    /// it saw is left in <paramref name="exchange"/>: a client that reset its stream, a body past
    /// the listener's maxBodySize (either resets the upstream stream), or the body's end.
    /// </summary>
    private static async Task PumpAsync(Http2ServerStream stream, Http2ClientStream upstream, Http2ProxyExchange exchange, long? maxBodySize, long? contentLength, bool sendContinue)
    {
        var body = stream.RequestBody;
        if (sendContinue)
        {
            stream.WriteHeaders(100);
        }

        while (true)
        {
            System.IO.Pipelines.ReadResult result;
            try
            {
                exchange.WaitingOnClient = true;
                result = await body.ReadAsync().ConfigureAwait(false);
                exchange.WaitingOnClient = false;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                exchange.WaitingOnClient = false;
                exchange.ClientGone = true;
                upstream.Cancel();
                return;
            }

            var buffer = result.Buffer;
            var advanced = false;
            if (result.IsCanceled)
            {
                body.AdvanceTo(buffer.Start);
                return;
            }

            try
            {
                if (!buffer.IsEmpty)
                {
                    exchange.BodyStarted = true;
                    exchange.BodyBytes += buffer.Length;
                    if (exchange.BodyBytes > maxBodySize)
                    {
                        body.AdvanceTo(buffer.Start);
                        exchange.BodyTooLarge = true;
                        upstream.Cancel();
                        return;
                    }

                    if (exchange.BodyBytes > contentLength)
                    {
                        body.AdvanceTo(buffer.Start);
                        exchange.BodyMismatch = true;
                        upstream.Cancel();
                        return;
                    }

                    if (result.IsCompleted && buffer.IsSingleSegment && !(exchange.BodyBytes < contentLength) && stream.RequestTrailers.Count == 0)
                    {
                        // The whole rest of the body (a unary call's usually is all of it): END_STREAM on its DATA, no empty frame after.
                        await upstream.WriteBodyAsync(buffer.First, endStream: true).ConfigureAwait(false);
                        body.AdvanceTo(buffer.End);
                        exchange.BodyDone = true;
                        return;
                    }

                    foreach (var segment in buffer)
                    {
                        await upstream.WriteBodyAsync(segment).ConfigureAwait(false);
                    }
                }

                body.AdvanceTo(buffer.End);
                advanced = true;
                if (result.IsCompleted)
                {
                    if (exchange.BodyBytes < contentLength)
                    {
                        // Ended short of the declared length: not sent as a complete request.
                        exchange.BodyMismatch = true;
                        upstream.Cancel();
                        return;
                    }

                    var trailers = stream.RequestTrailers;
                    for (var i = 0; i < trailers.Count; i++)
                    {
                        exchange.RequestTrailers.Add(trailers.Name(i), trailers.Value(i));
                    }

                    await upstream.EndRequestAsync(exchange.RequestTrailers).ConfigureAwait(false);
                    exchange.BodyDone = true;
                    return;
                }
            }
            catch (Exception ex) when (IsExchangeFailure(ex))
            {
                // The upstream stream failed: the response side reports it. The read is ended
                // (nothing consumed), or the next attempt's read would throw "already reading".
                if (!advanced)
                {
                    body.AdvanceTo(buffer.Start);
                }

                return;
            }
        }
    }
}
