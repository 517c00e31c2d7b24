using Forwarder.LoadBalancing.Hashing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads <c>lb.hash</c>: a list whose entries are <c>sourceIp</c>, <c>path</c>, <c>url</c>,
/// <c>header: NAME</c>, <c>query: NAME</c>, <c>cookie: NAME</c> or
/// <c>cookie: {name, generate, ttl, path}</c>.
/// </summary>
internal static class HashKeyReader
{
    private const string Expected = "sourceIp, path, url, header: NAME, query: NAME, cookie: NAME or cookie: {name, generate, ttl, path}";

    public static IReadOnlyList<HashKey> Read(YamlFieldReader reader, YamlNode node, string path)
    {
        List<HashKey> keys = [];
        var sequence = reader.Sequence(node, path);
        if (sequence is null)
        {
            return keys;
        }

        if (sequence.Children.Count == 0)
        {
            reader.Error(sequence, path, $"needs at least one key: {Expected}");
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            var itemPath = $"{path}[{i}]";
            var key = item switch
            {
                YamlScalarNode { Value: "sourceIp" } => HashKey.SourceIp,
                YamlScalarNode { Value: "path" } => new HashKey(HashKeySource.Path),
                YamlScalarNode { Value: "url" } => new HashKey(HashKeySource.Url),
                YamlMappingNode { Children.Count: 1 } mapping => ReadNamed(reader, mapping, itemPath),
                _ => null,
            };
            if (key is null)
            {
                if (!reader.Errors.Any(e => e.Field.StartsWith(itemPath, StringComparison.Ordinal)))
                {
                    reader.Error(item, itemPath, $"expected one of: {Expected}");
                }

                continue;
            }

            if (keys.Contains(key))
            {
                reader.Error(item, itemPath, "is listed twice");
                continue;
            }

            keys.Add(key);
        }

        return keys;
    }

    private static HashKey? ReadNamed(YamlFieldReader reader, YamlMappingNode mapping, string path)
    {
        var (kindNode, value) = mapping.Children.Single();
        var kind = (kindNode as YamlScalarNode)?.Value;
        var source = kind switch
        {
            "header" => HashKeySource.Header,
            "query" => HashKeySource.Query,
            "cookie" => HashKeySource.Cookie,
            _ => (HashKeySource?)null,
        };
        if (source is null)
        {
            return null;
        }

        var fieldPath = $"{path}.{kind}";
        if (source == HashKeySource.Cookie && value is YamlMappingNode)
        {
            return ReadCookie(reader, value, fieldPath);
        }

        var name = (value as YamlScalarNode)?.Value;
        if (!IsToken(name))
        {
            reader.Error(value, fieldPath, $"expected a {kind} name (letters, digits and !#$%&'*+-.^_`|~), got '{name}'");
            return null;
        }

        // Header names are case-insensitive; store them one way so lookups need not care.
        return new HashKey(source.Value, source == HashKeySource.Header ? name!.ToLowerInvariant() : name);
    }

    private static HashKey? ReadCookie(YamlFieldReader reader, YamlNode node, string path)
    {
        var fields = reader.Mapping(node, path, "name", "generate", "ttl", "path");
        if (fields is null)
        {
            return null;
        }

        var name = reader.String(fields, path, "name", required: true, node);
        if (name is not null && !IsToken(name))
        {
            reader.Error(fields["name"], $"{path}.name", $"expected a cookie name (letters, digits and !#$%&'*+-.^_`|~), got '{name}'");
            return null;
        }

        var generate = reader.Bool(fields, path, "generate", false);
        var ttl = fields.ContainsKey("ttl") ? reader.Duration(fields, path, "ttl", TimeSpan.Zero, TimeSpan.FromSeconds(1)) : (TimeSpan?)null;
        var cookiePath = reader.String(fields, path, "path", required: false, node) ?? "/";
        if (!cookiePath.StartsWith('/') || cookiePath.Any(c => c is ';' or ',' or ' ' || char.IsControl(c)))
        {
            reader.Error(fields["path"], $"{path}.path", $"expected a path such as / or /app, got '{cookiePath}'");
        }

        if (!generate && (ttl is not null || fields.ContainsKey("path")))
        {
            reader.Error(node, $"{path}.generate", "ttl and path describe the cookie the proxy generates; add 'generate: true' or remove them");
        }

        return name is null ? null : new HashKey(HashKeySource.Cookie, name, generate ? new CookieAffinity(ttl, cookiePath) : null);
    }

    private static bool IsToken(string? name)
        => !string.IsNullOrEmpty(name) && name.Length <= 256 && name.All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c));
}
