using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads typed fields out of a YAML tree and records, for anything wrong, the file, line, column
/// and field path together with what was expected. Reading goes on after an error so that one
/// pass reports every problem.
/// </summary>
internal sealed class YamlFieldReader(string file)
{
    private readonly List<ConfigError> _errors = [];

    public IReadOnlyList<ConfigError> Errors => _errors;

    public void Error(YamlNode node, string field, string message)
        => _errors.Add(new ConfigError(file, (int)node.Start.Line, (int)node.Start.Column, field, message));

    /// <summary>Returns the mapping's fields by name, reporting fields that are not among <paramref name="known"/>.</summary>
    public Dictionary<string, YamlNode>? Mapping(YamlNode node, string field, params string[] known)
    {
        if (node is not YamlMappingNode mapping)
        {
            Error(node, field, $"expected a mapping with fields {string.Join(", ", known)}");
            return null;
        }

        var fields = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? string.Empty;
            if (known.Length > 0 && !known.Contains(key, StringComparer.Ordinal))
            {
                var suggestion = known.FirstOrDefault(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase));
                Error(keyNode, Join(field, key), suggestion is null
                    ? $"unknown field; expected one of: {string.Join(", ", known)}"
                    : $"unknown field; did you mean '{suggestion}'?");
                continue;
            }

            fields[key] = valueNode;
        }

        return fields;
    }

    public YamlSequenceNode? Sequence(YamlNode node, string field)
    {
        if (node is YamlSequenceNode sequence)
        {
            return sequence;
        }

        Error(node, field, "expected a list");
        return null;
    }

    public string? String(Dictionary<string, YamlNode> fields, string parent, string name, bool required, YamlNode owner)
    {
        if (!fields.TryGetValue(name, out var node))
        {
            if (required)
            {
                Error(owner, Join(parent, name), "is required");
            }

            return null;
        }

        if (node is not YamlScalarNode { Value: { Length: > 0 } value } || IsNull(node))
        {
            Error(node, Join(parent, name), "expected a non-empty string");
            return null;
        }

        return value;
    }

    public T Parsed<T>(Dictionary<string, YamlNode> fields, string parent, string name, T fallback, string expected, TryParse<T> parse)
    {
        if (!fields.TryGetValue(name, out var node) || IsNull(node))
        {
            return fallback;
        }

        if (node is YamlScalarNode { Value: { } text } && parse(text, out var value))
        {
            return value;
        }

        Error(node, Join(parent, name), $"expected {expected}, got '{Describe(node)}'");
        return fallback;
    }

    public int Int(Dictionary<string, YamlNode> fields, string parent, string name, int fallback, int min, int max)
        => OptionalInt(fields, parent, name, min, max) ?? fallback;

    public int? OptionalInt(Dictionary<string, YamlNode> fields, string parent, string name, int min, int max)
        => Parsed(fields, parent, name, null, $"a whole number from {min} to {max}",
            (string text, out int? value) =>
            {
                var ok = int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number) && number >= min && number <= max;
                value = ok ? number : null;
                return ok;
            });

    public bool Bool(Dictionary<string, YamlNode> fields, string parent, string name, bool fallback)
        => Parsed(fields, parent, name, fallback, "true or false", bool.TryParse);

    public TimeSpan Duration(Dictionary<string, YamlNode> fields, string parent, string name, TimeSpan fallback, TimeSpan min)
        => Parsed(fields, parent, name, fallback, $"a duration such as 500ms, 2s, 5m or 1h{(min > TimeSpan.Zero ? $" (at least {ValueParsers.FormatDuration(min)})" : string.Empty)}",
            (string text, out TimeSpan value) => ValueParsers.TryParseDuration(text, out value) && value >= min);

    public int? Size(Dictionary<string, YamlNode> fields, string parent, string name, int? fallback, int min, int max)
        => Parsed(fields, parent, name, fallback, $"a size in bytes from {min} to {max} such as 65536, 64KiB or 1MiB",
            (string text, out int? value) =>
            {
                value = null;
                if (!ValueParsers.TryParseSize(text, out var bytes) || bytes < min || bytes > max)
                {
                    return false;
                }

                value = (int)bytes;
                return true;
            });

    public static string Join(string parent, string name) => parent.Length == 0 ? name : $"{parent}.{name}";

    private static bool IsNull(YamlNode node)
        => node is YamlScalarNode { Style: not (YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted), Value: null or "" or "~" or "null" };

    private static string Describe(YamlNode node) => node switch
    {
        YamlScalarNode scalar => scalar.Value ?? string.Empty,
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => node.ToString(),
    };

    public delegate bool TryParse<T>(string text, out T value);
}
