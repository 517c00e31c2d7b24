using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Forwarder.L7.Routing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.L7.Http2;

/// <summary>
/// WebSockets opened over HTTP/2 with extended CONNECT (RFC 8441) go upstream as the HTTP/1.1
/// upgrade every WebSocket server speaks (RFC 6455): the proxy makes up the Sec-WebSocket-Key
/// HTTP/2 clients do not send, checks the upstream's accept against it, answers the client 200,
/// and from then on carries the session's bytes both ways.
/// </summary>
internal sealed partial class HttpForwarder
{
    /// <summary>RFC 6455's fixed suffix of the accept computation.</summary>
    private const string WebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    private const int TunnelBufferSize = 16 * 1024;

    /// <summary>How long the other direction may go on after one side ended the session.</summary>
    private static readonly TimeSpan CloseLinger = TimeSpan.FromSeconds(5);

    /// <summary>Handshake headers that describe the session and so reach the client; the rest belong to the HTTP/1.1 hop.</summary>
    private static readonly string[] SessionHeaders = ["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"];

    /// <summary>
    /// Loads OpenSSL, which the handshake's random key and SHA-1 need, now rather than with the
    /// first WebSocket, which may come at the descriptor limit. Nothing else loads it unless TLS is
    /// configured.
    /// </summary>
    public static void WarmUpHandshakeCrypto()
    {
        _ = RandomNumberGenerator.GetInt32(2);
        _ = SHA1.HashData([]);
    }

    /// <summary>Turns the request into an HTTP/1.1 upgrade; returns the key the upstream's accept must match.</summary>
    private static string AddUpgradeHeaders(HttpRequestMessage request)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        request.Headers.TryAddWithoutValidation("Connection", "Upgrade");
        request.Headers.TryAddWithoutValidation("Upgrade", "websocket");
        request.Headers.TryAddWithoutValidation("Sec-WebSocket-Key", key);
        if (!request.Headers.Contains("Sec-WebSocket-Version"))
        {
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Version", "13");
        }

        return key;
    }

    /// <summary>True if the 101 is a WebSocket server's answer to <paramref name="key"/>.</summary>
    private static bool IsAcceptOf(HttpResponseMessage response, string key)
    {
        if (!response.Headers.TryGetValues("Sec-WebSocket-Accept", out var values) || values.SingleOrDefault() is not { } accept)
        {
            return false;
        }

        var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + WebSocketGuid)));
        return string.Equals(accept.Trim(), expected, StringComparison.Ordinal);
    }

    /// <summary>Accepts the client's CONNECT with 200 and carries bytes both ways until either side ends.</summary>
    private static async Task TunnelAsync(HttpContext context, IHttpExtendedConnectFeature connect, HttpResponseMessage response, GeneratedCookie? generated)
    {
        foreach (var name in SessionHeaders)
        {
            if (response.Headers.TryGetValues(name, out var values))
            {
                context.Response.Headers.Append(name, string.Join(", ", values));
            }
        }

        context.Response.Headers.Append("Via", "1.1 forwarder");
        if (generated is not null)
        {
            context.Response.Headers.Append("Set-Cookie", generated.SetCookieValue);
        }

        await using var upstream = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
        await using var client = await connect.AcceptAsync().ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var toUpstream = PumpAsync(client, upstream, stop.Token);
        var toClient = PumpAsync(upstream, client, stop.Token);

        // A WebSocket ends with a close handshake inside the stream, so once one side has ended
        // the other has at most a moment left (its close frame in flight); one that broke ends both.
        var first = await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
        if (await first.ConfigureAwait(false))
        {
            stop.CancelAfter(CloseLinger);
            await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        }

        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        if (!await first.ConfigureAwait(false))
        {
            // A side that broke rather than ended: the client must not take it for a clean close.
            context.Abort();
        }
    }

    /// <summary>Copies until the source ends (true) or either stream fails or the copy is stopped (false); never throws.</summary>
    private static async Task<bool> PumpAsync(Stream from, Stream to, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(TunnelBufferSize);
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                await to.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            return true;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or HttpRequestException or ConnectionAbortedException)
        {
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
