using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.Runtime;
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.WebUtilities;

namespace Forwarder.L7;

/// <content>The HTTP/2 upstream's response, written back to the HTTP/1 client.</content>
internal sealed partial class Http1ProxySession
{
    private const int Http2BodyBufferSize = 16 * 1024;

    private static readonly HashSet<string> NotForwardedToHttp1 = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "content-length",
    };

    /// <summary>Writes the response as HTTP/1.1 and streams its body; true when the connection stays open.</summary>
    private async ValueTask<bool> CopyHttp2ResponseAsync(HttpListenerModel model, RouteModel route, ServiceModel service, UpstreamEndpoint endpoint, HttpResponseMessage response, GeneratedCookie? generated, long started, double upstreamMilliseconds, int retries, RequestId requestId)
    {
        var status = (int)response.StatusCode;
        var bodiless = _request.Method.SequenceEqual("HEAD"u8) || status is 204 or 304 || status < 200;
        var length = response.Content.Headers.ContentLength;
        var chunked = !bodiless && length is null && _request.Version != Http1Version.Http10;
        var closeAfter = !_request.KeepAlive || (!bodiless && length is null && !chunked) || _stopping.IsCancellationRequested;

        var head = new StringBuilder(256);
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n");
        AppendHeaders(head, response.Headers);
        AppendHeaders(head, response.Content.Headers);
        if (length is { } known && (!bodiless || _request.Method.SequenceEqual("HEAD"u8)))
        {
            head.Append(CultureInfo.InvariantCulture, $"Content-Length: {known}\r\n");
        }

        head.Append(chunked ? "Transfer-Encoding: chunked\r\n" : string.Empty)
            .Append(closeAfter ? "Connection: close\r\n" : _request.Version == Http1Version.Http10 ? "Connection: keep-alive\r\n" : string.Empty)
            .Append(generated is null ? string.Empty : $"Set-Cookie: {generated.SetCookieValue}\r\n")
            .Append("Via: 2 forwarder\r\n\r\n");
        var headBytes = Encoding.Latin1.GetBytes(head.ToString());
        _output.Write(headBytes);
        long sent = headBytes.Length;

        var complete = true;
        if (!bodiless)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(Http2BodyBufferSize);
            try
            {
                _client.IdleTimeout = route.Config.Timeout;
                await using var stream = await response.Content.ReadAsStreamAsync(_client.Client.ConnectionClosed).ConfigureAwait(false);
                int read;
                while ((read = await stream.ReadAsync(buffer, _client.Client.ConnectionClosed).ConfigureAwait(false)) > 0)
                {
                    sent += WriteBodyPart(buffer.AsSpan(0, read), chunked);
                    if ((await _output.FlushAsync().ConfigureAwait(false)).IsCompleted)
                    {
                        complete = false;
                        break;
                    }
                }

                if (complete && chunked)
                {
                    _output.Write("0\r\n\r\n"u8);
                    sent += 5;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                complete = false;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
                _client.IdleTimeout = TimeSpan.Zero;
            }
        }

        route.Metrics.Responded(status);
        service.Metrics.Http.Responded(status);
        _listenerMetrics.AddSent(sent);
        _listenerMetrics.AddReceived(_request.Bytes.Length + _requestBody.Forwarded);
        if (!complete)
        {
            // Part of the response is out: only a reset tells the client the rest is missing.
            _handler.WarnResponseCut(route.Config.Name, service.Config.Name, endpoint.Config.Address, "HTTP/2 response broke");
            route.Metrics.Abort();
            service.Metrics.Http.Abort();
            service.Health.ReportFailure(endpoint.Health);
            if (_client.Client.Features.Get<IConnectionResetFeature>() is { } reset)
            {
                reset.Reset();
            }
            else
            {
                _client.Client.Abort(new ConnectionAbortedException("The upstream failed mid-response."));
            }
        }

        Log(model, route, service, endpoint, status, sent, started, upstreamMilliseconds, retries, requestId);
        var flushed = await _output.FlushAsync().ConfigureAwait(false);
        return complete && !closeAfter && !flushed.IsCompleted;
    }

    /// <summary>
    /// Waits until nothing reads the client's connection for the body any more (the upstream may
    /// have answered without taking all of it); true when the body was read whole, so the next
    /// request starts where this one ended.
    /// </summary>
    private async ValueTask<bool> SettleClientBodyAsync(ClientBodyContent? body)
    {
        if (body is null)
        {
            return true;
        }

        if (body.Started && body.Outcome is null)
        {
            _input.CancelPendingRead();
            await body.Finished.ConfigureAwait(false);
        }

        return body.Outcome == BodyOutcome.Complete;
    }

    private int WriteBodyPart(ReadOnlySpan<byte> data, bool chunked)
    {
        if (!chunked)
        {
            _output.Write(data);
            return data.Length;
        }

        Span<byte> size = stackalloc byte[12];
        data.Length.TryFormat(size, out var digits, "x", CultureInfo.InvariantCulture);
        "\r\n"u8.CopyTo(size[digits..]);
        _output.Write(size[..(digits + 2)]);
        _output.Write(data);
        _output.Write("\r\n"u8);
        return digits + 4 + data.Length;
    }

    private static void AppendHeaders(StringBuilder head, HttpHeaders headers)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            if (NotForwardedToHttp1.Contains(name))
            {
                continue;
            }

            foreach (var value in values)
            {
                head.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }
    }
}
