using System.Buffers;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Server;
using Forwarder.L7.Routing;

namespace Forwarder.L7.Http2.Proxy;

/// <content>The heads rewritten on the way: the request head for the upstream, the response head for the client.</content>
internal sealed partial class Http2ProxyHandler
{
    /// <summary>The response head for the client in <see cref="Http2ProxyExchange.Response"/>.</summary>
    private static void CopyResponseHead(Http2ClientStream upstream, Http2ProxyExchange exchange, GeneratedCookie? generated)
    {
        var fields = exchange.Response;
        fields.Clear();
        var headers = upstream.ResponseHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var name = headers.Name(i);
            if (name.IsEmpty || name[0] == (byte)':' || IsConnectionSpecific(name))
            {
                continue;
            }

            fields.Add(name, headers.Value(i));
        }

        fields.Add("via"u8, "2 forwarder"u8);
        if (generated is not null)
        {
            fields.Add("set-cookie"u8, Encoding.Latin1.GetBytes(generated.SetCookieValue));
        }
    }

    private static bool IsConnectionSpecific(ReadOnlySpan<byte> name)
        => name.SequenceEqual("connection"u8) || name.SequenceEqual("keep-alive"u8) || name.SequenceEqual("proxy-connection"u8)
            || name.SequenceEqual("transfer-encoding"u8) || name.SequenceEqual("upgrade"u8);

    /// <summary>
    /// The upstream's request head in <see cref="Http2ProxyExchange.Upstream"/>: the routed
    /// (normalized) target and host, the client's fields less hop-by-hop ones, and the
    /// forwarding headers; true when the client sent its own X-Request-Id.
    /// </summary>
    private bool BuildUpstreamHead(Http2ServerStream stream, Http2ProxyExchange exchange)
    {
        var head = exchange.Head;
        var list = exchange.Upstream;
        list.Clear();
        list.Add(":method"u8, stream.Method);
        list.Add(":scheme"u8, "http"u8);
        list.Add(":authority"u8, head.Host);
        list.Add(":path"u8, head.Target);
        var fields = stream.RequestHeaders;
        var joined = exchange.Joined;
        joined.ResetWrittenCount();
        var hasRequestId = false;
        for (var i = 0; i < fields.Count; i++)
        {
            var name = fields.Name(i);
            if (name[0] == (byte)':' || name.SequenceEqual("host"u8) || name.SequenceEqual("x-forwarded-proto"u8) || name.SequenceEqual("x-forwarded-host"u8)
                || name.SequenceEqual("via"u8) || name.SequenceEqual("expect"u8))
            {
                continue;
            }

            if (name.SequenceEqual("x-forwarded-for"u8))
            {
                joined.Write(fields.Value(i));
                joined.Write(", "u8);
                continue;
            }

            hasRequestId |= name.SequenceEqual("x-request-id"u8);
            list.Add(name, name.SequenceEqual("te"u8) ? "trailers"u8 : fields.Value(i));
        }

        joined.Write(_clientAddressText);
        list.Add("x-forwarded-for"u8, joined.WrittenSpan);
        list.Add("x-forwarded-proto"u8, _scheme);
        list.Add("x-forwarded-host"u8, head.Host);
        AddVia(stream, exchange);
        if (!hasRequestId)
        {
            NewRequestId(exchange);
            list.Add("x-request-id"u8, exchange.RequestId.AsSpan(0, exchange.RequestIdLength));
        }

        return hasRequestId;
    }

    /// <summary>Via: the client's (all its fields, in order) with this hop added.</summary>
    private static void AddVia(Http2ServerStream stream, Http2ProxyExchange exchange)
    {
        var fields = stream.RequestHeaders;
        var joined = exchange.Joined;
        joined.ResetWrittenCount();
        for (var i = 0; i < fields.Count; i++)
        {
            if (fields.Name(i).SequenceEqual("via"u8))
            {
                joined.Write(fields.Value(i));
                joined.Write(", "u8);
            }
        }

        joined.Write("2 forwarder"u8);
        exchange.Upstream.Add("via"u8, joined.WrittenSpan);
    }
}
