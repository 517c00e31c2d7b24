using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Http;

namespace Forwarder.L7.Http2;

/// <content>The client's request: checked, described for routing, and rebuilt for the upstream.</content>
internal sealed partial class HttpForwarder
{
    /// <summary>The target with its path normalized and its query untouched; the same string when nothing changes.</summary>
    private static string NormalizeTarget(string target, PathNormalization mode)
    {
        var queryAt = target.IndexOf('?');
        var path = queryAt < 0 ? target : target[..queryAt];
        var normalized = PathNormalizer.Normalize(path, mode);
        if (ReferenceEquals(normalized, path))
        {
            return target;
        }

        return queryAt < 0 ? normalized : string.Concat(normalized, target.AsSpan(queryAt));
    }

    /// <summary>The request as an HTTP/1.1 head, for the route table and the hash keys; false with the status to answer when it cannot be one.</summary>
    /// <param name="webSocket">Described as the HTTP/1.1 upgrade it becomes, so routes and hash keys see a WebSocket the same either way.</param>
    private static bool TryDescribe(HttpRequest request, string target, bool webSocket, Http1Limits limits, Http1RequestHead head, out Http1Error error)
    {
        var text = new StringBuilder();
        text.Append(webSocket ? "GET" : request.Method).Append(' ').Append(target)
            .Append(" HTTP/1.1\r\nHost: ").Append(request.Host.Value).Append("\r\n");
        if (webSocket)
        {
            text.Append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
        }

        foreach (var (name, values) in request.Headers)
        {
            if (name.StartsWith(':') || name.Equals("host", StringComparison.OrdinalIgnoreCase) || name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var value in values)
            {
                text.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }

        text.Append("\r\n");
        var bytes = Encoding.Latin1.GetBytes(text.ToString());
        if (Http1RequestParser.TryParse(new ReadOnlySequence<byte>(bytes), limits, head, out _, out error) == Http1ParseStatus.Complete)
        {
            return true;
        }

        if (error.Status == 0)
        {
            error = new Http1Error(431, "request head too large");
        }

        return false;
    }

    /// <summary>Whether the request carries a field HTTP/2 forbids: a connection-specific one, or TE other than "trailers".</summary>
    private static bool HasConnectionSpecificField(IHeaderDictionary headers)
        => headers.ContainsKey("connection") || headers.ContainsKey("keep-alive") || headers.ContainsKey("proxy-connection")
            || headers.ContainsKey("transfer-encoding") || headers.ContainsKey("upgrade")
            || (headers.TryGetValue("te", out var te) && !string.Equals(te.ToString().Trim(), "trailers", StringComparison.OrdinalIgnoreCase));

    /// <summary>Whether a header value has a character HTTP/2 cannot carry upstream (SocketsHttpHandler sends ASCII only).</summary>
    private static bool HasNonAsciiValue(IHeaderDictionary headers)
    {
        foreach (var (_, values) in headers)
        {
            foreach (var value in values)
            {
                if (value is not null && !Ascii.IsValid(value))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>The request for the upstream: same method, path and headers, less hop-by-hop ones, plus the forwarding headers.</summary>
    /// <param name="uri">The client's path and query, verbatim (<see cref="UpstreamRequestUri"/>).</param>
    /// <param name="webSocketKey">For a WebSocket, the Sec-WebSocket-Key the upstream must answer; else null.</param>
    private static HttpRequestMessage CreateRequest(HttpContext context, Uri uri, Http1RequestHead head, ServiceModel service, IPAddress? client, string requestId, StreamingContent? body, bool webSocket, out string? webSocketKey)
    {
        var incoming = context.Request;
        var version = webSocket ? HttpVersion.Version11 : service.Config.Http.Version;
        var method = webSocket ? HttpMethod.Get : new HttpMethod(incoming.Method);
        var request = new HttpRequestMessage(method, uri)
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = body,
        };

        string? forwardedFor = null;
        string? via = null;
        var hasRequestId = false;
        foreach (var (name, values) in incoming.Headers)
        {
            if (name.StartsWith(':') || HopByHop.Contains(name))
            {
                // TE: trailers is the one TE an HTTP/2 upstream must see: gRPC relies on it.
                if (name.Equals("te", StringComparison.OrdinalIgnoreCase) && version.Major >= 2 && values.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
                {
                    request.Headers.TryAddWithoutValidation("TE", "trailers");
                }

                continue;
            }

            if (name.Equals("x-forwarded-for", StringComparison.OrdinalIgnoreCase))
            {
                forwardedFor = values.ToString();
                continue;
            }

            if (name.Equals("via", StringComparison.OrdinalIgnoreCase))
            {
                via = values.ToString();
                continue;
            }

            hasRequestId |= name.Equals("x-request-id", StringComparison.OrdinalIgnoreCase);
            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values) && body is not null)
            {
                body.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        var host = Encoding.Latin1.GetString(head.Host);
        request.Headers.Host = host;
        var address = client?.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{client}]" : client?.ToString();
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", forwardedFor is null ? address : $"{forwardedFor}, {address}");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        request.Headers.TryAddWithoutValidation("Via", via is null ? "2 forwarder" : $"{via}, 2 forwarder");
        if (!hasRequestId)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
        }

        webSocketKey = webSocket ? AddUpgradeHeaders(request) : null;
        return request;
    }
}
