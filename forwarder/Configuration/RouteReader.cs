using System.Text.RegularExpressions;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads an http listener's <c>routes</c> list: each route's match, its service or weighted
/// split (every service must exist), timeout, retries and websocket switch.
/// </summary>
internal static class RouteReader
{
    private const string RetryOnExpected = "reset, timeout, 502, 503, 504 or 5xx";

    public static List<RouteConfig> Read(YamlFieldReader reader, YamlNode node, string path, ServiceCatalog services)
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
