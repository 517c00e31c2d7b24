using System.Text.RegularExpressions;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads what an http listener adds to a listener: the <c>http</c> section (limits, timeouts,
/// access log) and the <c>routes</c> list, checking every route's services exist.
/// </summary>
internal static class HttpListenerReader
{
    private const string RetryOnExpected = "reset, timeout, 502, 503, 504 or 5xx";

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

        var routes = ReadRoutes(reader, routesNode, $"{path}.routes", services);
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

    private static List<RouteConfig> ReadRoutes(YamlFieldReader reader, YamlNode node, string path, ServiceCatalog services)
    {
        List<RouteConfig> routes = [];
        var sequence = reader.Sequence(node, path);
        if (sequence is null)
        {
            return routes;
        }

        if (sequence.Children.Count == 0)
        {
            reader.Error(sequence, path, "needs at least one route");
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            var itemPath = $"{path}[{i}]";
            var fields = reader.Mapping(item, itemPath, "name", "match", "service", "split", "timeout", "retries", "websocket");
            if (fields is null)
            {
                continue;
            }

            var name = reader.String(fields, itemPath, "name", required: false, item) ?? $"route-{i}";
            if (routes.Any(r => r.Name == name))
            {
                reader.Error(fields.GetValueOrDefault("name") ?? item, $"{itemPath}.name", $"another route of this listener is already named '{name}'");
            }

            var match = fields.TryGetValue("match", out var matchNode) ? ReadMatch(reader, matchNode, $"{itemPath}.match") : new RouteMatch(null, null, [], []);
            var backends = ReadBackends(reader, fields, item, itemPath, services);
            var timeout = reader.Duration(fields, itemPath, "timeout", RouteConfig.DefaultTimeout, TimeSpan.FromMilliseconds(1));
            var retry = fields.TryGetValue("retries", out var retryNode) ? ReadRetry(reader, retryNode, $"{itemPath}.retries") : RetryPolicy.Default;
            var webSocket = reader.Bool(fields, itemPath, "websocket", true);
            if (match is not null && backends is not null)
            {
                routes.Add(new RouteConfig(name, match, backends, timeout, retry, webSocket));
            }
        }

        return routes;
    }

    private static RouteMatch? ReadMatch(YamlFieldReader reader, YamlNode node, string path)
    {
        var fields = reader.Mapping(node, path, "host", "path", "methods", "headers");
        if (fields is null)
        {
            return null;
        }

        var ok = true;
        var host = reader.String(fields, path, "host", required: false, node);
        if (host is not null && !IsHostPattern(host))
        {
            reader.Error(fields["host"], $"{path}.host", $"expected a host name such as api.example.com or *.example.com, got '{host}'");
            ok = false;
        }

        PathMatch? pathMatch = null;
        if (fields.TryGetValue("path", out var pathNode))
        {
            pathMatch = ReadPath(reader, pathNode, $"{path}.path");
            ok &= pathMatch is not null;
        }

        List<string> methods = [];
        if (fields.TryGetValue("methods", out var methodsNode) && reader.Sequence(methodsNode, $"{path}.methods") is { } methodList)
        {
            for (var i = 0; i < methodList.Children.Count; i++)
            {
                var methodNode = methodList.Children[i];
                if (methodNode is YamlScalarNode { Value: { Length: > 0 } method } && method.All(char.IsAsciiLetterUpper))
                {
                    methods.Add(method);
                }
                else
                {
                    reader.Error(methodNode, $"{path}.methods[{i}]", $"expected a method in capitals such as GET or POST, got '{Describe(methodNode)}'");
                    ok = false;
                }
            }
        }

        List<HeaderMatch> headers = [];
        if (fields.TryGetValue("headers", out var headersNode) && reader.Sequence(headersNode, $"{path}.headers") is { } headerList)
        {
            for (var i = 0; i < headerList.Children.Count; i++)
            {
                var headerPath = $"{path}.headers[{i}]";
                var headerNode = headerList.Children[i];
                var headerFields = reader.Mapping(headerNode, headerPath, "name", "value");
                var name = headerFields is null ? null : reader.String(headerFields, headerPath, "name", required: true, headerNode);
                if (name is null || !Http1Fields.IsToken(System.Text.Encoding.Latin1.GetBytes(name)))
                {
                    if (name is not null)
                    {
                        reader.Error(headerFields!["name"], $"{headerPath}.name", $"'{name}' is not a valid header name");
                    }

                    ok = false;
                    continue;
                }

                headers.Add(new HeaderMatch(name, reader.String(headerFields!, headerPath, "value", required: false, headerNode)));
            }
        }

        return ok ? new RouteMatch(host, pathMatch, methods, headers) : null;
    }

    private static PathMatch? ReadPath(YamlFieldReader reader, YamlNode node, string path)
    {
        var fields = reader.Mapping(node, path, "exact", "prefix", "regex");
        if (fields is null)
        {
            return null;
        }

        if (fields.Count != 1)
        {
            reader.Error(node, path, "expected exactly one of exact, prefix or regex");
            return null;
        }

        var (kindName, valueNode) = fields.First();
        var value = reader.String(fields, path, kindName, required: true, node);
        if (value is null)
        {
            return null;
        }

        var kind = kindName switch
        {
            "exact" => PathMatchKind.Exact,
            "prefix" => PathMatchKind.Prefix,
            _ => PathMatchKind.Regex,
        };
        if (kind != PathMatchKind.Regex && !value.StartsWith('/'))
        {
            reader.Error(valueNode, $"{path}.{kindName}", $"a path starts with '/', got '{value}'");
            return null;
        }

        try
        {
            if (kind == PathMatchKind.Regex)
            {
                // On its own first: PathMatch wraps it as ^(?:VALUE)$, which a value such as
                // "/a)|(/b" would escape, matching unanchored instead of failing.
                _ = new Regex(value, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
            }

            return new PathMatch(kind, value);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            reader.Error(valueNode, $"{path}.{kindName}", $"not a regular expression this proxy can run in linear time: {ex.Message}");
            return null;
        }
    }

    private static List<RouteBackend>? ReadBackends(YamlFieldReader reader, Dictionary<string, YamlNode> fields, YamlNode owner, string path, ServiceCatalog services)
    {
        var hasService = fields.ContainsKey("service");
        var hasSplit = fields.ContainsKey("split");
        if (hasService == hasSplit)
        {
            reader.Error(owner, path, "expected either service (one service) or split (several, by weight)");
            return null;
        }

        if (hasService)
        {
            var service = reader.String(fields, path, "service", required: true, owner);
            return service is not null && Exists(reader, fields["service"], $"{path}.service", service, services) ? [new RouteBackend(service, 1)] : null;
        }

        var sequence = reader.Sequence(fields["split"], $"{path}.split");
        if (sequence is null)
        {
            return null;
        }

        List<RouteBackend> backends = [];
        var ok = sequence.Children.Count > 0;
        if (!ok)
        {
            reader.Error(sequence, $"{path}.split", "needs at least one service");
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var itemPath = $"{path}.split[{i}]";
            var item = sequence.Children[i];
            var itemFields = reader.Mapping(item, itemPath, "service", "weight");
            var service = itemFields is null ? null : reader.String(itemFields, itemPath, "service", required: true, item);
            if (service is null || !Exists(reader, itemFields!["service"], $"{itemPath}.service", service, services))
            {
                ok = false;
                continue;
            }

            if (backends.Any(b => b.Service == service))
            {
                reader.Error(itemFields["service"], $"{itemPath}.service", $"'{service}' is listed twice; give it a higher weight instead");
                ok = false;
                continue;
            }

            backends.Add(new RouteBackend(service, reader.Int(itemFields, itemPath, "weight", 1, 0, 1_000_000)));
        }

        if (ok && backends.All(b => b.Weight == 0))
        {
            reader.Error(sequence, $"{path}.split", "at least one service needs a weight above 0");
            ok = false;
        }

        return ok ? backends : null;
    }

    private static bool Exists(YamlFieldReader reader, YamlNode node, string path, string service, ServiceCatalog services)
    {
        if (services.Knows(service))
        {
            return true;
        }

        reader.Error(node, path, $"no service named '{service}' ({services.Describe()})");
        return false;
    }

    private static RetryPolicy ReadRetry(YamlFieldReader reader, YamlNode node, string path)
    {
        var fields = reader.Mapping(node, path, "attempts", "on", "budgetPercent", "minConcurrent");
        if (fields is null)
        {
            return RetryPolicy.Default;
        }

        var on = RetryPolicy.Default.On;
        if (fields.TryGetValue("on", out var onNode) && reader.Sequence(onNode, $"{path}.on") is { } conditions)
        {
            on = RetryOn.None;
            for (var i = 0; i < conditions.Children.Count; i++)
            {
                var condition = conditions.Children[i];
                RetryOn? flag = (condition as YamlScalarNode)?.Value switch
                {
                    "reset" => RetryOn.Reset,
                    "timeout" => RetryOn.Timeout,
                    "502" => RetryOn.Status502,
                    "503" => RetryOn.Status503,
                    "504" => RetryOn.Status504,
                    "5xx" => RetryOn.Status5xx,
                    _ => null,
                };
                if (flag is null)
                {
                    reader.Error(condition, $"{path}.on[{i}]", $"expected {RetryOnExpected}, got '{Describe(condition)}'");
                    continue;
                }

                on |= flag.Value;
            }
        }

        return new RetryPolicy(
            Attempts: reader.Int(fields, path, "attempts", RetryPolicy.Default.Attempts, 0, 10),
            on,
            BudgetPercent: reader.Int(fields, path, "budgetPercent", RetryPolicy.Default.BudgetPercent, 0, 100),
            MinConcurrent: reader.Int(fields, path, "minConcurrent", RetryPolicy.Default.MinConcurrent, 0, 10_000));
    }

    private static string Describe(YamlNode node) => node switch
    {
        YamlScalarNode scalar => scalar.Value ?? string.Empty,
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => node.ToString(),
    };

    private static bool IsHostPattern(string host)
    {
        var name = host.StartsWith("*.", StringComparison.Ordinal) ? host[2..] : host;
        return name.Length is > 0 and <= 253
            && name.Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'));
    }
}
