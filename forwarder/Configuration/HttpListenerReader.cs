using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads what an http listener adds to a listener: the <c>http</c> section (limits, timeouts,
/// access log, the HTTP/2 engine its routes allow) and the <c>routes</c> list (<see cref="RouteReader"/>).
/// </summary>
internal static class HttpListenerReader
{
    public static HttpListenerConfig? Read(YamlFieldReader reader, Dictionary<string, YamlNode> listener, YamlNode owner, string path, ServiceCatalog services)
    {
        var settings = listener.TryGetValue("http", out var httpNode)
            ? reader.Mapping(httpNode, $"{path}.http", "headerTimeout", "keepAliveTimeout", "maxRequestLine", "maxHeaderBytes", "maxHeaders", "maxBodySize", "accessLog", "http2", "pathNormalization", "bodyTimeout", "responseBufferPerConnection") ?? []
            : [];
        var httpPath = $"{path}.http";
        var limits = new Http1Limits(
            MaxRequestLine: reader.Size(settings, httpPath, "maxRequestLine", Http1Limits.Default.MaxRequestLine, 256, 1 << 20)!.Value,
            MaxHeadBytes: reader.Size(settings, httpPath, "maxHeaderBytes", Http1Limits.Default.MaxHeadBytes, 1024, 1 << 20)!.Value,
            MaxHeaders: reader.Int(settings, httpPath, "maxHeaders", Http1Limits.Default.MaxHeaders, 1, 10_000));
        var headerTimeout = reader.Duration(settings, httpPath, "headerTimeout", HttpListenerConfig.DefaultHeaderTimeout, TimeSpan.FromMilliseconds(1));
        var keepAliveTimeout = reader.Duration(settings, httpPath, "keepAliveTimeout", HttpListenerConfig.DefaultKeepAliveTimeout, TimeSpan.FromMilliseconds(1));
        var bodyTimeout = reader.Duration(settings, httpPath, "bodyTimeout", HttpListenerConfig.DefaultBodyTimeout, TimeSpan.FromMilliseconds(1));
        var pathNormalization = reader.Parsed(settings, httpPath, "pathNormalization", PathNormalization.DotSegments, "off, dot-segments or full",
            (string text, out PathNormalization value) =>
            {
                PathNormalization? parsed = text switch
                {
                    "off" => PathNormalization.Off,
                    "dot-segments" => PathNormalization.DotSegments,
                    "full" => PathNormalization.Full,
                    _ => null,
                };
                value = parsed ?? PathNormalization.DotSegments;
                return parsed is not null;
            });
        var maxBodySize = reader.Parsed<long?>(settings, httpPath, "maxBodySize", null, "a size in bytes such as 1048576, 10MiB or 1GiB",
            (string text, out long? value) =>
            {
                var ok = ValueParsers.TryParseSize(text, out var bytes) && bytes >= 0;
                value = ok ? bytes : null;
                return ok;
            });
        var accessLog = reader.String(settings, httpPath, "accessLog", required: false, owner);

        // Below 256 KiB a single stream could not reach its full window; above 1 GiB it bounds nothing.
        var responseBuffer = reader.Size(settings, httpPath, "responseBufferPerConnection", HttpListenerConfig.DefaultResponseBufferPerConnection, 256 * 1024, 1 << 30)!.Value;

        if (!listener.TryGetValue("routes", out var routesNode))
        {
            reader.Error(owner, $"{path}.routes", "is required for an http listener: a list of routes, each with match and service (or split)");
            return null;
        }

        var routes = RouteReader.Read(reader, routesNode, $"{path}.routes", services);
        var (http2, engine) = reader.Parsed(settings, httpPath, "http2", (true, Http2Engine.Auto), "auto, native, kestrel or off (true is auto, false is off)",
            (string text, out (bool On, Http2Engine Engine) value) =>
            {
                (bool, Http2Engine)? parsed = text.ToLowerInvariant() switch
                {
                    "auto" or "true" => (true, Http2Engine.Auto),
                    "native" => (true, Http2Engine.Native),
                    "kestrel" => (true, Http2Engine.Kestrel),
                    "off" or "false" => (false, Http2Engine.Auto),
                    _ => null,
                };
                value = parsed ?? (true, Http2Engine.Auto);
                return parsed is not null;
            });
        if (http2 && engine != Http2Engine.Kestrel)
        {
            engine = ResolveEngine(reader, settings, httpPath, engine, routes, services, AsksForWebSockets(listener));
        }

        return new HttpListenerConfig(http2, limits, headerTimeout, keepAliveTimeout, maxBodySize, accessLog, routes, pathNormalization, bodyTimeout, engine, responseBuffer);
    }

    /// <summary>
    /// The engine <c>auto</c> or <c>native</c> comes to. The native engine forwards to HTTP/2
    /// upstreams only: auto takes it when every route's services are file services with
    /// <c>http.version: "2"</c> and no route asks for WebSockets (extended CONNECT is Kestrel's
    /// alone), else Kestrel; native asked for where it cannot serve is an error.
    /// </summary>
    private static Http2Engine ResolveEngine(YamlFieldReader reader, Dictionary<string, YamlNode> settings, string httpPath, Http2Engine engine, List<RouteConfig> routes, ServiceCatalog services, bool webSockets)
    {
        string? notHttp2 = null;
        foreach (var route in routes)
        {
            foreach (var backend in route.Backends)
            {
                if (services.InFile(backend.Service) is not { } service || service.Http.Version.Major < 2)
                {
                    notHttp2 ??= backend.Service;
                }
            }
        }

        if (engine == Http2Engine.Auto)
        {
            return notHttp2 is null && !webSockets && routes.Count > 0 ? Http2Engine.Native : Http2Engine.Kestrel;
        }

        if (notHttp2 is not null)
        {
            reader.Error(settings["http2"], $"{httpPath}.http2", $"native serves HTTP/2 clients only for services with http.version \"2\", and service '{notHttp2}' is not one; use auto or kestrel");
        }
        else if (webSockets)
        {
            reader.Error(settings["http2"], $"{httpPath}.http2", "native does not tunnel WebSockets over HTTP/2 (extended CONNECT), and a route asks for websocket: true; use auto or kestrel");
        }

        return engine;
    }

    /// <summary>Whether any route says <c>websocket: true</c> itself (the default, left unsaid, does not count).</summary>
    private static bool AsksForWebSockets(Dictionary<string, YamlNode> listener)
    {
        if (!listener.TryGetValue("routes", out var routes) || routes is not YamlSequenceNode sequence)
        {
            return false;
        }

        foreach (var route in sequence.Children)
        {
            // Read as the route's own reader reads it (bool.TryParse: True, TRUE too).
            if (route is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode("websocket"), out var value)
                && value is YamlScalarNode { Value: { } text } && bool.TryParse(text, out var on) && on)
            {
                return true;
            }
        }

        return false;
    }
}
