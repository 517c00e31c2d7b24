using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;
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
            if (name.IsEmpty || name[0] == (byte)':' || Http1FieldKinds.Of(name) is Http1FieldKind.Connection or Http1FieldKind.KeepAlive
                or Http1FieldKind.ProxyConnection or Http1FieldKind.TransferEncoding or Http1FieldKind.Upgrade)
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
        var hasVia = false;
        for (var i = 0; i < fields.Count; i++)
        {
            var name = fields.Name(i);
            if (name[0] == (byte)':')
            {
                continue;
            }

            // One switch on the name's length (and at most a compare or two) rather than a compare per special name.
            switch (Http1FieldKinds.Of(name))
            {
                case Http1FieldKind.Host or Http1FieldKind.XForwardedProto or Http1FieldKind.XForwardedHost or Http1FieldKind.Expect:
                    continue;
                case Http1FieldKind.Via:
                    hasVia = true;
                    continue;
                case Http1FieldKind.XForwardedFor:
                    joined.Write(fields.Value(i));
                    joined.Write(", "u8);
                    continue;
                case Http1FieldKind.XRequestId:
                    hasRequestId = true;
                    break;
                case Http1FieldKind.TE:
                    list.Add(name, "trailers"u8);
                    continue;
            }

            list.Add(name, fields.Value(i));
        }

        joined.Write(_clientAddressText);
        list.Add("x-forwarded-for"u8, joined.WrittenSpan);
        list.Add("x-forwarded-proto"u8, _scheme);
        list.Add("x-forwarded-host"u8, head.Host);
        AddVia(stream, exchange, hasVia);
        if (!hasRequestId)
        {
            NewRequestId(exchange);
            list.Add("x-request-id"u8, exchange.RequestId.AsSpan(0, exchange.RequestIdLength));
        }

        return hasRequestId;
    }

    /// <summary>Via: the client's (all its fields, in order, when <paramref name="clientVia"/>) with this hop added.</summary>
    private static void AddVia(Http2ServerStream stream, Http2ProxyExchange exchange, bool clientVia)
    {
        var fields = stream.RequestHeaders;
        var joined = exchange.Joined;
        joined.ResetWrittenCount();
        for (var i = 0; clientVia && i < fields.Count; i++)
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
