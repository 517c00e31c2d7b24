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
    public void WriteTo(IBufferWriter<byte> output)
    {
        output.WriteAscii(Connection);
        var span = output.GetSpan(17);
        span[0] = (byte)'-';
        Sequence.TryFormat(span[1..], out var written, "x", System.Globalization.CultureInfo.InvariantCulture);
        output.Advance(written + 1);
    }

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Connection}-{Sequence:x}");
}

/// <summary>
/// Writes the request head the upstream receives: origin-form HTTP/1.1, the client's fields less
/// the hop-by-hop ones (and any the client listed in Connection), then the proxy's own:
/// X-Forwarded-For (appended to), X-Forwarded-Proto and -Host (replaced: only the proxy knows
/// them), Via (appended to), and X-Request-Id when absent. Framing fields pass through as parsed,
/// since the body is forwarded byte for byte.
/// </summary>
internal static class Http1RequestWriter
{
    /// <summary>The hop-by-hop fields, and the two the proxy writes itself.</summary>
    private static readonly byte[][] NotForwarded =
        [.. new[] { "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-forwarded-proto", "x-forwarded-host" }.Select(Encoding.ASCII.GetBytes)];

    /// <summary>Fields a Connection header may not remove: dropping them would change what the request means.</summary>
    private static readonly byte[][] Protected =
        [.. new[] { "host", "content-length", "transfer-encoding" }.Select(Encoding.ASCII.GetBytes)];

    public static void Write(IBufferWriter<byte> output, Http1RequestHead head, in ForwardingContext context)
    {
        Append(output, head.Method);
        Append(output, " "u8);
        Append(output, head.Path.IsEmpty ? "/"u8 : head.Path);
        if (!head.Query.IsEmpty)
        {
            Append(output, "?"u8);
            Append(output, head.Query);
        }

        Append(output, " HTTP/1.1\r\nHost: "u8);
        Append(output, head.Host);
        Append(output, "\r\n"u8);

        var connection = head["connection"u8];
        ReadOnlySpan<byte> forwardedFor = default;
        ReadOnlySpan<byte> via = default;
        var hasRequestId = false;
        var wroteLength = false;
        for (var i = 0; i < head.HeaderCount; i++)
        {
            var name = head.HeaderName(i);
            if (Ascii.EqualsIgnoreCase(name, "host"u8) || IsNotForwarded(name, connection, head.Upgrade))
            {
                continue;
            }

            if (Ascii.EqualsIgnoreCase(name, "x-forwarded-for"u8))
            {
                forwardedFor = head.HeaderValue(i);
                continue;
            }

            if (Ascii.EqualsIgnoreCase(name, "via"u8))
            {
                via = head.HeaderValue(i);
                continue;
            }

            if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                // Once, as the one number it was parsed to: "5, 5" or a repeated field would
                // be framing a second parser might read differently.
                if (!wroteLength)
                {
                    wroteLength = true;
                    Append(output, "Content-Length: "u8);
                    AppendNumber(output, head.ContentLength ?? 0);
                    Append(output, "\r\n"u8);
                }

                continue;
            }

            hasRequestId |= Ascii.EqualsIgnoreCase(name, "x-request-id"u8);
            Field(output, name, head.HeaderValue(i));
        }

        if (head.Upgrade)
        {
            Append(output, "Connection: upgrade\r\nUpgrade: "u8);
            Append(output, head["upgrade"u8]);
            Append(output, "\r\n"u8);
        }

        Append(output, "X-Forwarded-For: "u8);
        if (!forwardedFor.IsEmpty)
        {
            Append(output, forwardedFor);
            Append(output, ", "u8);
        }

        AppendAddress(output, context.ClientAddress);
        Append(output, "\r\nX-Forwarded-Proto: "u8);
        output.WriteAscii(context.Scheme);
        Append(output, "\r\nX-Forwarded-Host: "u8);
        Append(output, head.Host);
        Append(output, "\r\nVia: "u8);
        if (!via.IsEmpty)
        {
            Append(output, via);
            Append(output, ", "u8);
        }

        Append(output, head.Version == Http1Version.Http10 ? "1.0 forwarder\r\n"u8 : "1.1 forwarder\r\n"u8);
        if (!hasRequestId)
        {
            Append(output, "X-Request-Id: "u8);
            context.RequestId.WriteTo(output);
            Append(output, "\r\n"u8);
        }

        Append(output, "\r\n"u8);
    }

    private static bool IsNotForwarded(ReadOnlySpan<byte> name, ReadOnlySpan<byte> connection, bool upgrade)
    {
        foreach (var hop in NotForwarded)
        {
            if (Ascii.EqualsIgnoreCase(name, hop))
            {
                return true;
            }
        }

        foreach (var protectedName in Protected)
        {
            if (Ascii.EqualsIgnoreCase(name, protectedName))
            {
                return false;
            }
        }

        foreach (var token in new Http1Fields.TokenList(connection))
        {
            // An upgrade's own field is written back explicitly with its Connection token.
            if (Ascii.EqualsIgnoreCase(token, name) && !(upgrade && Ascii.EqualsIgnoreCase(name, "upgrade"u8)))
            {
                return true;
            }
        }

        return false;
    }

    private static void Field(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        Append(output, name);
        Append(output, ": "u8);
        Append(output, value);
        Append(output, "\r\n"u8);
    }

    private static void AppendAddress(IBufferWriter<byte> output, IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var span = output.GetSpan(64);
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            // RFC 7239 style brackets keep the colons of an IPv6 address unambiguous in a list.
            span[0] = (byte)'[';
            address.TryFormat(span[1..], out var written);
            span[written + 1] = (byte)']';
            output.Advance(written + 2);
        }
        else
        {
            address.TryFormat(span, out var written);
            output.Advance(written);
        }
    }

    private static void Append(IBufferWriter<byte> output, ReadOnlySpan<byte> value) => output.Write(value);

    private static void AppendNumber(IBufferWriter<byte> output, long value)
    {
        var span = output.GetSpan(20);
        value.TryFormat(span, out var written, provider: System.Globalization.CultureInfo.InvariantCulture);
        output.Advance(written);
    }
}
