using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>locality</c> section and a service's <c>lb.locality</c>.</summary>
internal static class LocalityConfigReader
{
    private const string Section = "locality";

    /// <summary>Factors below 100% would send traffic away from a level with every endpoint healthy.</summary>
    private const int MinFactor = 100;

    private const int MaxFactor = 100_000;

    /// <param name="node">The section; null when absent: this node's place then comes from the environment, and services opt in one by one.</param>
    /// <param name="meshNode">The <c>node</c> section's name, this node's name when nothing else gives one.</param>
    public static LocalityConfig Read(YamlFieldReader reader, YamlNode? node, string? meshNode)
    {
        var fields = node is null ? null : reader.Mapping(node, Section, "node", "zone", "enabled", "overprovisioningFactor", "levels");
        var configured = fields is null ? null : NonEmpty(reader.String(fields, Section, "node", required: false, node!));
        if (configured is not null && !ConfigLoader.IsValidName(configured))
        {
            reader.Error(fields!["node"], "locality.node", $"'{configured}' is not a node name; node names may use letters, digits, - _ .");
        }

        var self = configured ?? NonEmpty(Environment.GetEnvironmentVariable(LocalityConfig.NodeVariable)) ?? meshNode;
        var zone = NonEmpty(fields is null ? null : reader.String(fields, Section, "zone", required: false, node!))
            ?? NonEmpty(Environment.GetEnvironmentVariable(LocalityConfig.ZoneVariable));

        var place = new LocalityConfig(self, zone, null);
        if (fields is null)
        {
            return place;
        }

        var settings = ReadSettings(reader, fields, Section, new ServiceLocality(self, zone, LocalityConfig.DefaultLevels));
        return place with { Default = settings };
    }

    /// <summary>A service's <c>lb.locality</c>: its own settings over the section's; null when off.</summary>
    public static ServiceLocality? ReadService(YamlFieldReader reader, YamlNode node, string lbPath, LocalityConfig global)
    {
        var path = $"{lbPath}.locality";
        var fields = reader.Mapping(node, path, "enabled", "overprovisioningFactor", "levels");
        var inherited = global.Default ?? new ServiceLocality(global.Node, global.Zone, LocalityConfig.DefaultLevels);
        return fields is null ? global.Default : ReadSettings(reader, fields, path, inherited);
    }

    private static ServiceLocality? ReadSettings(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string path, ServiceLocality inherited)
    {
        if (!reader.Bool(fields, path, "enabled", true))
        {
            return null;
        }

        var factor = reader.Int(fields, path, "overprovisioningFactor", inherited.OverprovisioningFactor, MinFactor, MaxFactor);
        var levels = fields.TryGetValue("levels", out var levelsNode) ? ReadLevels(reader, levelsNode, $"{path}.levels") : inherited.Levels;
        return inherited with { Levels = levels, OverprovisioningFactor = factor };
    }

    private static List<LocalityScope> ReadLevels(YamlFieldReader reader, YamlNode node, string path)
    {
        List<LocalityScope> levels = [];
        if (reader.Sequence(node, path) is not { } sequence)
        {
            return levels;
        }

        if (sequence.Children.Count == 0)
        {
            reader.Error(sequence, path, "needs node and/or zone, nearest first; use enabled: false to turn locality off");
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            LocalityScope? scope = (item as YamlScalarNode)?.Value switch
            {
                "node" => LocalityScope.Node,
                "zone" => LocalityScope.Zone,
                _ => null,
            };
            if (scope is not { } known)
            {
                reader.Error(item, $"{path}[{i}]", "expected node or zone");
            }
            else if (levels.Contains(known))
            {
                reader.Error(item, $"{path}[{i}]", $"{(item as YamlScalarNode)?.Value} is listed twice");
            }
            else
            {
                levels.Add(known);
            }
        }

        return levels;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
