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

        var fields = reader.Mapping(node, Section, "name", "listen", "certificate", "key", "ca", "limits", "mode", "splicePort", "ticketLifetime", "spliceIdleTimeout", "spliceHalfCloseTimeout");
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
        var splice = ReadSplice(reader, fields, endPoint);
        return name is null || endPoint is null || identity is null || authority is null
            ? null
            : new RelayConfig(path, name, endPoint, identity, authority, limits, admin, splice);
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

    /// <summary>The splice port: by default the one after the listen port (any free one when that is 0).</summary>
    private static RelaySpliceConfig ReadSplice(YamlFieldReader reader, Dictionary<string, YamlDotNet.RepresentationModel.YamlNode> fields, System.Net.IPEndPoint? listen)
    {
        var mode = ReadMode(reader, fields, Section, "mode") ?? RelayMode.Splice;
        var fallback = listen is { Port: > 0 and < 65535 } ? listen.Port + 1 : 0;
        var port = reader.Int(fields, Section, "splicePort", fallback, 0, 65535);
        if (listen is not null && port != 0 && port == listen.Port)
        {
            reader.Error(fields["splicePort"], "relay.splicePort", $"is the listen port {port}: the splice port needs its own (by default the next one)");
        }

        var lifetime = reader.Duration(fields, Section, "ticketLifetime", RelaySpliceConfig.DefaultTicketLifetime, TimeSpan.FromMilliseconds(100));
        var idle = reader.Duration(fields, Section, "spliceIdleTimeout", RelaySpliceConfig.DefaultIdleTimeout, TimeSpan.FromMilliseconds(100));
        if (idle < RelaySpliceConfig.MinIdleTimeout && fields.TryGetValue("spliceIdleTimeout", out var idleField))
        {
            reader.Error(idleField, "relay.spliceIdleTimeout", $"is {ValueParsers.FormatDuration(idle)}: it must be at least {ValueParsers.FormatDuration(RelaySpliceConfig.MinIdleTimeout)}, twice the nodes' keep-alive interval (node.keepAlive, {ValueParsers.FormatDuration(NodeConfig.DefaultKeepAlive)} by default), or an idle but healthy spliced link is cut between two pings");
        }

        var halfClose = reader.Duration(fields, Section, "spliceHalfCloseTimeout", RelaySpliceConfig.DefaultHalfCloseTimeout, TimeSpan.FromMilliseconds(100));
        return new RelaySpliceConfig(mode, port, lifetime, idle, halfClose);
    }

    /// <summary>A relay mode field: splice or terminate; null when absent (or wrong, which is reported).</summary>
    internal static RelayMode? ReadMode(YamlFieldReader reader, Dictionary<string, YamlDotNet.RepresentationModel.YamlNode> fields, string path, string name)
        => reader.Parsed<RelayMode?>(fields, path, name, null, "splice or terminate",
            (string text, out RelayMode? mode) =>
            {
                mode = text switch
                {
                    "splice" => RelayMode.Splice,
                    "terminate" => RelayMode.Terminate,
                    _ => null,
                };
                return mode is not null;
            });
}
