namespace Forwarder.Configuration;

/// <summary>Reads a relay's config file: the <c>relay</c> section and an optional <c>admin</c> endpoint.</summary>
internal static class RelayConfigReader
{
    private const string Section = "relay";

    /// <exception cref="ConfigException">Every error found, each with file, line and field.</exception>
    public static RelayConfig LoadFile(string path)
    {
        var root = ConfigLoader.LoadYaml(ConfigLoader.ReadText(path), path, "expected a 'relay' section with name, listen, certificate, key and ca");
        var reader = new YamlFieldReader(path);
        var config = Read(reader, root, path);
        if (reader.Errors.Count > 0)
        {
            throw new ConfigException(reader.Errors);
        }

        return config!;
    }

    private static RelayConfig? Read(YamlFieldReader reader, YamlDotNet.RepresentationModel.YamlNode root, string path)
    {
        var top = reader.Mapping(root, string.Empty, Section, "admin");
        if (top is null)
        {
            return null;
        }

        var admin = top.TryGetValue("admin", out var adminNode) ? ConfigLoader.ReadAdmin(reader, adminNode) : null;
        if (!top.TryGetValue(Section, out var node))
        {
            reader.Error(root, Section, "is required: the relay's name, listen, certificate, key and ca");
            return null;
        }

        var fields = reader.Mapping(node, Section, "name", "listen", "certificate", "key", "ca", "limits");
        if (fields is null)
        {
            return null;
        }

        var name = reader.String(fields, Section, "name", required: true, node);
        if (name is not null && !ConfigLoader.IsValidName(name))
        {
            reader.Error(fields["name"], "relay.name", "relay names may use letters, digits, - _ . (the DNS name in the relay's certificate)");
        }

        var listen = reader.String(fields, Section, "listen", required: true, node);
        System.Net.IPEndPoint? endPoint = null;
        if (listen is not null && !ValueParsers.TryParseListenAddress(listen, out endPoint))
        {
            reader.Error(fields["listen"], "relay.listen", $"expected IP:PORT such as 0.0.0.0:7700, got '{listen}'");
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? Directory.GetCurrentDirectory();
        var (identity, authority) = NodeConfigReader.ReadIdentity(reader, fields, Section, name, node, folder);
        var limits = ReadLimits(reader, fields.GetValueOrDefault("limits"));
        return name is null || endPoint is null || identity is null || authority is null
            ? null
            : new RelayConfig(path, name, endPoint, identity, authority, limits, admin);
    }

    private static RelayLimits ReadLimits(YamlFieldReader reader, YamlDotNet.RepresentationModel.YamlNode? node)
    {
        const string Path = "relay.limits";
        var fields = node is null ? [] : reader.Mapping(node, Path, "streamsPerNode", "bandwidthPerNode") ?? [];
        var streams = reader.Int(fields, Path, "streamsPerNode", RelayLimits.DefaultStreamsPerNode, 1, 1_000_000);
        var bandwidth = reader.Parsed<long?>(fields, Path, "bandwidthPerNode", null, "bytes per second such as 10MB or 1GiB (at least 64KiB)",
            (string text, out long? value) =>
            {
                var ok = ValueParsers.TryParseSize(text, out var bytes) && bytes >= 64 * 1024;
                value = ok ? bytes : null;
                return ok;
            });
        return new RelayLimits(streams, bandwidth);
    }
}
