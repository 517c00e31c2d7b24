using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace Forwarder.L7.Http1;

/// <summary>
/// Writes the response head the client receives: HTTP/1.1, the upstream's status and reason,
/// its fields less the hop-by-hop ones (and any it listed in Connection), Via appended to, an
/// affinity cookie when the balancer made one up, and Connection: close when the client
/// connection ends after this response (keep-alive when an HTTP/1.0 client's stays open). Also writes the proxy's own error responses.
/// </summary>
internal static class Http1ResponseWriter
{
    /// <param name="closeAfter">The client connection closes after this response (the client asked, or the body runs until close).</param>
    /// <param name="setCookie">A Set-Cookie value to add (the generated affinity cookie), or null.</param>
    /// <param name="dechunked">The body is forwarded without its chunked framing (to an HTTP/1.0 client): Transfer-Encoding is left out.</param>
    /// <param name="sayKeepAlive">The client is HTTP/1.0, which closes after a response unless it says Connection: keep-alive.</param>
    public static void Write(IBufferWriter<byte> writer, Http1ResponseHead head, bool closeAfter, string? setCookie, bool dechunked = false, bool sayKeepAlive = false)
    {
        var output = new HeadOutput(writer);
        output.Write("HTTP/1.1 "u8);
        output.WriteNumber(head.Status);
        output.Write(" "u8);
        if (head.Reason.IsEmpty)
        {
            output.WriteAscii(ReasonPhrases.GetReasonPhrase(head.Status));
        }
        else
        {
            output.Write(head.Reason);
        }

        output.Write("\r\n"u8);

        var via = false;
        var wroteLength = false;
        for (var i = 0; i < head.HeaderCount; i++)
        {
            var kind = head.HeaderKind(i);
            via |= kind == Http1FieldKind.Via;

            if (IsHopByHop(kind) || (dechunked && kind == Http1FieldKind.TransferEncoding)
                || (head.ConnectionNamesFields && kind is not (Http1FieldKind.ContentLength or Http1FieldKind.TransferEncoding) && head.IsNamedByConnection(i)))
            {
                // Fields that frame the body stay whatever Connection says: dropping them would change the message.
                continue;
            }

            if (head.Framing == Http1BodyFraming.Length && kind == Http1FieldKind.ContentLength)
            {
                // Once, as the number it was parsed to (a list of equal values is allowed in, not
                // out). Without a body (HEAD, 304) the field only informs and passes as it is.
                if (!wroteLength)
                {
                    wroteLength = true;
                    output.Write("Content-Length: "u8);
                    output.WriteNumber(head.ContentLength);
                    output.Write("\r\n"u8);
                }

                continue;
            }

            output.Write(head.HeaderName(i));
            output.Write(": "u8);
            output.Write(head.HeaderValue(i));
            output.Write("\r\n"u8);
        }

        if (head.Status == 101)
        {
            output.Write("Connection: upgrade\r\nUpgrade: "u8);
            output.Write(head.First(Http1FieldKind.Upgrade));
            output.Write("\r\n"u8);
        }
        else if (closeAfter)
        {
            output.Write("Connection: close\r\n"u8);
        }
        else if (sayKeepAlive)
        {
            output.Write("Connection: keep-alive\r\n"u8);
        }

        if (setCookie is not null)
        {
            output.Write("Set-Cookie: "u8);
            output.WriteAscii(setCookie);
            output.Write("\r\n"u8);
        }

        output.Write("Via: "u8);
        if (via)
        {
            head.WriteListItems(ref output, Http1FieldKind.Via);
        }

        output.Write(head.Version == Http1Version.Http10 ? "1.0 forwarder\r\n\r\n"u8 : "1.1 forwarder\r\n\r\n"u8);
        output.Commit();
    }

    /// <summary>A complete response the proxy answers by itself (400, 404, 502, ...): a short text body, and the connection closes.</summary>
    public static void WriteError(IBufferWriter<byte> writer, int status)
    {
        var phrase = ReasonPhrases.GetReasonPhrase(status);
        var body = string.Create(CultureInfo.InvariantCulture, $"{status} {phrase}\n");
        var output = new HeadOutput(writer);
        output.WriteAscii(string.Create(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        output.Commit();
    }

    private static bool IsHopByHop(Http1FieldKind kind) => kind is Http1FieldKind.Connection or Http1FieldKind.KeepAlive or Http1FieldKind.ProxyConnection
        or Http1FieldKind.TE or Http1FieldKind.Trailer or Http1FieldKind.Upgrade or Http1FieldKind.Via;
}
