using System.Buffers;
using System.Net;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>What the proxy knows about a request that the upstream should learn from headers.</summary>
/// <param name="ClientAddress">The client's address, appended to X-Forwarded-For.</param>
/// <param name="Scheme">How the client reached us: http or https (X-Forwarded-Proto).</param>
/// <param name="RequestId">Sent as X-Request-Id when the request has none.</param>
internal readonly record struct ForwardingContext(IPAddress ClientAddress, string Scheme, RequestId RequestId);

/// <summary>
/// A request's id: its connection's id and its number on that connection, written as
/// "CONNECTION-N" (hex), unique within the process. Written straight into the upstream
/// request, so it costs no string unless the access log asks for one.
/// </summary>
internal readonly record struct RequestId(string Connection, long Sequence)
{
    public void WriteTo(ref HeadOutput output)
    {
        output.WriteAscii(Connection);
        output.Write("-"u8);
        output.WriteHexNumber(Sequence);
    }

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Connection}-{Sequence:x}");
}

/// <summary>
/// Writes the request head the upstream receives: origin-form HTTP/1.1, the client's fields less
/// the hop-by-hop ones (and any the client listed in Connection), HTTP2-Settings (no h2c upgrade
/// goes upstream) and Content_Length / Transfer_Encoding (framing to a server that reads '_' as
/// '-'), then the proxy's own: X-Forwarded-For (every line of it joined, then appended to), X-Forwarded-Proto and -Host (replaced: only the proxy knows
/// them), Via (the same), and X-Request-Id when absent. Framing fields pass through as parsed,
/// since the body is forwarded byte for byte.
/// </summary>
internal static class Http1RequestWriter
{
    public static void Write(IBufferWriter<byte> writer, Http1RequestHead head, in ForwardingContext context)
    {
        var output = new HeadOutput(writer);
        output.Write(head.Method);
        output.Write(" "u8);
        output.Write(head.Path.IsEmpty ? "/"u8 : head.Path);
        if (!head.Query.IsEmpty)
        {
            output.Write("?"u8);
            output.Write(head.Query);
        }

        output.Write(" HTTP/1.1\r\nHost: "u8);
        output.Write(head.Host);
        output.Write("\r\n"u8);

        var forwardedFor = false;
        var via = false;
        var hasRequestId = false;
        var wroteLength = false;
        for (var i = 0; i < head.HeaderCount; i++)
        {
            var kind = head.HeaderKind(i);
            if (IsNotForwarded(kind) || (IsRemovable(kind) && head.ConnectionNamesFields && head.IsNamedByConnection(i)))
            {
                continue;
            }

            switch (kind)
            {
                case Http1FieldKind.XForwardedFor:
                    forwardedFor = true;
                    continue;
                case Http1FieldKind.Via:
                    via = true;
                    continue;
                case Http1FieldKind.ContentLength:
                    // Once, as the one number it was parsed to: "5, 5" or a repeated field would
                    // be framing a second parser might read differently.
                    if (!wroteLength)
                    {
                        wroteLength = true;
                        output.Write("Content-Length: "u8);
                        output.WriteNumber(head.ContentLength ?? 0);
                        output.Write("\r\n"u8);
                    }

                    continue;
                case Http1FieldKind.XRequestId:
                    hasRequestId = true;
                    break;
            }

            output.Write(head.HeaderName(i));
            output.Write(": "u8);
            output.Write(head.HeaderValue(i));
            output.Write("\r\n"u8);
        }

        if (head.Upgrade)
        {
            output.Write("Connection: upgrade\r\nUpgrade: "u8);
            output.Write(head.First(Http1FieldKind.Upgrade));
            output.Write("\r\n"u8);
        }

        output.Write("X-Forwarded-For: "u8);
        if (forwardedFor)
        {
            head.WriteListItems(ref output, Http1FieldKind.XForwardedFor);
        }

        output.WriteAddress(context.ClientAddress.IsIPv4MappedToIPv6 ? context.ClientAddress.MapToIPv4() : context.ClientAddress);
        output.Write("\r\nX-Forwarded-Proto: "u8);
        output.WriteAscii(context.Scheme);
        output.Write("\r\nX-Forwarded-Host: "u8);
        output.Write(head.Host);
        output.Write("\r\nVia: "u8);
        if (via)
        {
            head.WriteListItems(ref output, Http1FieldKind.Via);
        }

        output.Write(head.Version == Http1Version.Http10 ? "1.0 forwarder\r\n"u8 : "1.1 forwarder\r\n"u8);
        if (!hasRequestId)
        {
            output.Write("X-Request-Id: "u8);
            context.RequestId.WriteTo(ref output);
            output.Write("\r\n"u8);
        }

        output.Write("\r\n"u8);
        output.Commit();
    }

    /// <summary>
    /// Host (written first, from the parsed authority), the hop-by-hop fields (an upgrade's own
    /// is written back explicitly with its Connection token), and the two the proxy writes itself.
    /// </summary>
    private static bool IsNotForwarded(Http1FieldKind kind) => kind is Http1FieldKind.Host or Http1FieldKind.Connection or Http1FieldKind.KeepAlive
        or Http1FieldKind.ProxyConnection or Http1FieldKind.TE or Http1FieldKind.Trailer or Http1FieldKind.Upgrade
        or Http1FieldKind.XForwardedProto or Http1FieldKind.XForwardedHost or Http1FieldKind.Http2Settings or Http1FieldKind.UnderscoredFraming;

    /// <summary>Whether a Connection field may remove it: not the fields that say what the request means (Host and the framing).</summary>
    private static bool IsRemovable(Http1FieldKind kind) => kind is not (Http1FieldKind.Host or Http1FieldKind.ContentLength or Http1FieldKind.TransferEncoding);
}
