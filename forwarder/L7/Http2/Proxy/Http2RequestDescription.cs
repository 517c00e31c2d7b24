using Forwarder.L7.Http1;
using Forwarder.L7.Http2.Server;

namespace Forwarder.L7.Http2.Proxy;

/// <summary>
/// Fills an <see cref="Http1RequestHead"/> straight from a request's decoded HTTP/2 fields, so
/// routes, hash keys and limits see what they see for the same request over HTTP/1.1 (its Host
/// the :authority, its cookie crumbs one field as RFC 9113 8.2.3 joins them) without writing that
/// head as text and parsing it back. The HTTP/1 parser's own checks run on the request line and
/// on the facts the fields state, in the order the parser meets them; the limits count the bytes
/// and lines the HTTP/1.1 head would have.
/// </summary>
internal static class Http2RequestDescription
{
    /// <summary>" HTTP/1.1": the request line's version, so the parser's own request-line check reads it.</summary>
    private static ReadOnlySpan<byte> Version => " HTTP/1.1"u8;

    /// <summary>0, or the status to refuse the request with.</summary>
    public static int Fill(Http2HeaderFields fields, Http1Limits limits, Http1RequestHead head)
    {
        var method = fields.Get(":method"u8);
        var path = fields.Get(":path"u8);
        if (path.IsEmpty || method.SequenceEqual("CONNECT"u8))
        {
            // CONNECT (plain or extended) has nowhere to go upstream here.
            return 501;
        }

        if (path[0] != (byte)'/')
        {
            // Only origin-form goes upstream (as HttpForwarder requires): an absolute-form or
            // asterisk :path would also replace the Host routed on, and the upstream's
            // rejection of it must not count against the endpoint.
            return 400;
        }

        var host = fields.Get(":authority"u8);
        if (host.IsEmpty)
        {
            host = fields.Get("host"u8);
        }

        // The HTTP/1.1 head's sizes: "METHOD SP path SP HTTP/1.1 CRLF", "name: value CRLF" a line, a CRLF to end.
        var line = method.Length + 1 + path.Length + Version.Length + 2;
        if (line > limits.MaxRequestLine)
        {
            return 414;
        }

        var size = line + "host: \r\n".Length + host.Length + "\r\n".Length;
        var length = line - 2 + "host".Length + host.Length;
        var cookies = 0;
        var cookieLength = 0;
        for (var i = 0; i < fields.Count; i++)
        {
            var name = fields.Name(i);
            if (name[0] == (byte)':' || name.SequenceEqual("host"u8))
            {
                continue;
            }

            if (name.SequenceEqual("cookie"u8))
            {
                cookieLength += (cookies++ == 0 ? 0 : "; ".Length) + fields.Value(i).Length;
                continue;
            }

            size += name.Length + ": \r\n".Length + fields.Value(i).Length;
            length += name.Length + fields.Value(i).Length;
        }

        if (cookies > 0)
        {
            size += "cookie: \r\n".Length + cookieLength;
            length += "cookie".Length + cookieLength;
        }

        if (size > limits.MaxHeadBytes)
        {
            return 431;
        }

        var bytes = head.Reset(length);
        var written = 0;
        Write(bytes, ref written, method);
        Write(bytes, ref written, " "u8);
        Write(bytes, ref written, path);
        Write(bytes, ref written, Version);
        if (!Http1RequestParser.ParseRequestLine(bytes[..written], head, out var error))
        {
            return Refusal(error);
        }

        // Regular fields with control characters were refused as the stream opened; :authority was not checked for them.
        if (!Http1Fields.IsFieldValue(host))
        {
            return 400;
        }

        var facts = new Http1Fields.Facts();
        var count = 0;
        var start = written;
        Write(bytes, ref written, "host"u8);
        Write(bytes, ref written, host);
        if (!Add(head, bytes, start, "host".Length, host.Length, limits, ref count, ref facts, out error))
        {
            return Refusal(error);
        }

        for (var i = 0; i < fields.Count; i++)
        {
            var name = fields.Name(i);
            if (name[0] == (byte)':' || name.SequenceEqual("host"u8) || name.SequenceEqual("cookie"u8))
            {
                continue;
            }

            start = written;
            Write(bytes, ref written, name);
            Write(bytes, ref written, fields.Value(i));
            if (!Add(head, bytes, start, name.Length, fields.Value(i).Length, limits, ref count, ref facts, out error))
            {
                return Refusal(error);
            }
        }

        if (cookies > 0)
        {
            start = written;
            Write(bytes, ref written, "cookie"u8);
            var joined = 0;
            for (var i = 0; i < fields.Count; i++)
            {
                if (fields.Name(i).SequenceEqual("cookie"u8))
                {
                    Write(bytes, ref written, joined++ == 0 ? default : "; "u8);
                    Write(bytes, ref written, fields.Value(i));
                }
            }

            // An empty last crumb leaves "; " at the end, which the parser trims off a field line.
            var value = bytes[(start + "cookie".Length)..written].TrimEnd(" "u8);
            if (!Add(head, bytes, start, "cookie".Length, value.Length, limits, ref count, ref facts, out error))
            {
                return Refusal(error);
            }
        }

        return Http1RequestParser.ApplyHeaderFacts(head, facts, out error) ? 0 : Refusal(error);
    }

    /// <summary>The status a failed check refuses with: never 0, which <see cref="Fill"/> returns for "accepted".</summary>
    internal static int Refusal(Http1Error error) => error.Status is 0 ? 400 : error.Status;

    private static void Write(Span<byte> bytes, ref int written, ReadOnlySpan<byte> value)
    {
        value.CopyTo(bytes[written..]);
        written += value.Length;
    }

    /// <summary>The field line at <paramref name="start"/> into the head: counted against maxHeaders first, as the parser counts lines, then noted.</summary>
    private static bool Add(Http1RequestHead head, ReadOnlySpan<byte> bytes, int start, int nameLength, int valueLength, Http1Limits limits, ref int count, ref Http1Fields.Facts facts, out Http1Error error)
    {
        error = default;
        if (++count > limits.MaxHeaders)
        {
            error = new Http1Error(431, $"more than {limits.MaxHeaders} header fields");
            return false;
        }

        var name = new Range(start, start + nameLength);
        var value = new Range(start + nameLength, start + nameLength + valueLength);
        var kind = Http1FieldKinds.Of(bytes[name]);
        head.AddHeader(name, value, kind);
        return kind == Http1FieldKind.Other || facts.Note(kind, bytes[value], value, out error);
    }
}
