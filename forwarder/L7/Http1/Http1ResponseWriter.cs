using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace Forwarder.L7.Http1;

/// <summary>
/// Writes the response head the client receives: HTTP/1.1, the upstream's status and reason,
/// its fields less the hop-by-hop ones (and any it listed in Connection), Via appended to, an
/// affinity cookie when the balancer made one up, and Connection: close when the client
/// connection ends after this response. Also writes the proxy's own error responses.
/// </summary>
internal static class Http1ResponseWriter
{
    private static readonly byte[][] HopByHop =
        [.. new[] { "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "via" }.Select(Encoding.ASCII.GetBytes)];

    /// <param name="closeAfter">The client connection closes after this response (the client asked, or the body runs until close).</param>
    /// <param name="setCookie">A Set-Cookie value to add (the generated affinity cookie), or null.</param>
    /// <param name="dechunked">The body is forwarded without its chunked framing (to an HTTP/1.0 client): Transfer-Encoding is left out.</param>
    public static void Write(IBufferWriter<byte> output, Http1ResponseHead head, bool closeAfter, string? setCookie, bool dechunked = false)
    {
        output.Write("HTTP/1.1 "u8);
        WriteNumber(output, head.Status);
        output.Write(" "u8);
        output.Write(head.Reason.IsEmpty ? Encoding.ASCII.GetBytes(ReasonPhrases.GetReasonPhrase(head.Status)) : head.Reason);
        output.Write("\r\n"u8);

        var connection = head["connection"u8];
        ReadOnlySpan<byte> via = default;
        var wroteLength = false;
        for (var i = 0; i < head.HeaderCount; i++)
        {
            var name = head.HeaderName(i);
            if (Ascii.EqualsIgnoreCase(name, "via"u8))
            {
                via = head.HeaderValue(i);
            }

            if (IsHopByHop(name, connection) || (dechunked && Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8)))
            {
                continue;
            }

            if (head.Framing == Http1BodyFraming.Length && Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                // Once, as the number it was parsed to (a list of equal values is allowed in, not
                // out). Without a body (HEAD, 304) the field only informs and passes as it is.
                if (!wroteLength)
                {
                    wroteLength = true;
                    output.Write("Content-Length: "u8);
                    WriteNumber(output, head.ContentLength);
                    output.Write("\r\n"u8);
                }

                continue;
            }

            output.Write(name);
            output.Write(": "u8);
            output.Write(head.HeaderValue(i));
            output.Write("\r\n"u8);
        }

        if (head.Status == 101)
        {
            output.Write("Connection: upgrade\r\nUpgrade: "u8);
            output.Write(head["upgrade"u8]);
            output.Write("\r\n"u8);
        }
        else if (closeAfter)
        {
            output.Write("Connection: close\r\n"u8);
        }

        if (setCookie is not null)
        {
            output.Write("Set-Cookie: "u8);
            output.WriteAscii(setCookie);
            output.Write("\r\n"u8);
        }

        output.Write("Via: "u8);
        if (!via.IsEmpty)
        {
            output.Write(via);
            output.Write(", "u8);
        }

        output.Write(head.Version == Http1Version.Http10 ? "1.0 forwarder\r\n\r\n"u8 : "1.1 forwarder\r\n\r\n"u8);
    }

    /// <summary>A complete response the proxy answers by itself (400, 404, 502, ...): a short text body, and the connection closes.</summary>
    public static void WriteError(IBufferWriter<byte> output, int status)
    {
        var phrase = ReasonPhrases.GetReasonPhrase(status);
        var body = string.Create(CultureInfo.InvariantCulture, $"{status} {phrase}\n");
        output.WriteAscii(string.Create(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
    }

    private static bool IsHopByHop(ReadOnlySpan<byte> name, ReadOnlySpan<byte> connection)
    {
        foreach (var hop in HopByHop)
        {
            if (Ascii.EqualsIgnoreCase(name, hop))
            {
                return true;
            }
        }

        // Fields that frame the body stay whatever Connection says: dropping them would change the message.
        if (Ascii.EqualsIgnoreCase(name, "content-length"u8) || Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
        {
            return false;
        }

        foreach (var token in new Http1Fields.TokenList(connection))
        {
            if (Ascii.EqualsIgnoreCase(token, name))
            {
                return true;
            }
        }

        return false;
    }

    private static void WriteNumber(IBufferWriter<byte> output, long value)
    {
        var span = output.GetSpan(20);
        value.TryFormat(span, out var written, provider: CultureInfo.InvariantCulture);
        output.Advance(written);
    }
}
