using System.IO.Hashing;
using System.Net;
using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Turns YAML text into a validated <see cref="ForwarderConfig"/>, or a <see cref="ConfigException"/>
/// listing every error with its file, line, column and field.
/// </summary>
internal static class ConfigLoader
{
    public const int DefaultMaxConnections = 100_000;

    /// <summary>The largest config file read (4 MiB holds some 20,000 services); a larger one is refused before it is read.</summary>
    public const long MaxFileBytes = 4 * 1024 * 1024;
    private const string ValidName = "letters, digits, '-', '_' and '.'";

    public static ForwarderConfig LoadFile(string path) => Parse(ReadText(path), path);

    public static ForwarderConfig Parse(string yaml, string file)
    {
        var root = LoadYaml(yaml, file, "expected 'listeners' and 'services'");
        var reader = new YamlFieldReader(file);
        var config = Read(reader, root, file, DigestOf(yaml));
        if (reader.Errors.Count > 0)
        {
            throw new ConfigException(reader.Errors);
        }

        return config!;
    }

    /// <summary>The root node of a YAML file.</summary>
    /// <exception cref="ConfigException">The text is not YAML, or is empty (<paramref name="expected"/> says what belongs there).</exception>
    internal static YamlNode LoadYaml(string yaml, string file, string expected)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new BoundedYamlParser(yaml, file));
        }
        catch (YamlException ex)
        {
            var message = ex.InnerException?.Message ?? ex.Message;
            throw new ConfigException([new ConfigError(file, (int)ex.Start.Line, (int)ex.Start.Column, string.Empty, $"invalid YAML: {message}")]);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner fails this way on some unterminated flow collections.
            var mark = LastGoodMark(yaml);
            throw new ConfigException([new ConfigError(file, (int)mark.Line, (int)mark.Column, string.Empty, "invalid YAML: a [ ] or { } collection near here is not closed properly")]);
        }

        if (stream.Documents.Count == 0)
        {
            throw new ConfigException([new ConfigError(file, 1, 1, string.Empty, $"the file is empty; {expected}")]);
        }

        return stream.Documents[0].RootNode;
    }

    /// <summary>The text of a config file.</summary>
    /// <exception cref="ConfigException">It cannot be read, or is larger than <see cref="MaxFileBytes"/>.</exception>
    internal static string ReadText(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            if (file.Length > MaxFileBytes)
            {
                throw new ConfigException([new ConfigError(path, 1, 1, string.Empty, $"the file is {file.Length} bytes; a config file may be at most {MaxFileBytes / (1024 * 1024)} MiB")]);
            }

            using var reader = new StreamReader(file);
            return reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException([new ConfigError(path, 0, 0, string.Empty, $"cannot read the file: {ex.Message}")]);
        }
    }

    private static Mark LastGoodMark(string yaml)
    {
        var parser = new Parser(new StringReader(yaml));
        var mark = Mark.Empty;
        try
        {
            while (parser.MoveNext())
            {
                mark = parser.Current!.End;
            }
        }
        catch (InvalidOperationException)
        {
            // Where it broke is what we were after.
        }

        return mark;
    }

    /// <summary>
    /// The digest <see cref="ForwarderConfig.Digest"/> holds, for the given config text: 128 bits
    /// of xxHash64 under two seeds. It only tells an edit from a touch of a file its owner writes,
    /// so it needs no cryptographic hash, and a cryptographic one would load OpenSSL (some 4 MB
    /// resident) into every process, TLS or not.
    /// </summary>
    public static string DigestOf(string yaml)
    {
        var bytes = Encoding.UTF8.GetBytes(yaml);
        return $"{XxHash64.HashToUInt64(bytes):X16}{XxHash64.HashToUInt64(bytes, seed: unchecked((long)0x9E3779B97F4A7C15)):X16}";
    }

    private static ForwarderConfig? Read(YamlFieldReader reader, YamlNode root, string file, string digest)
    {
        var fields = reader.Mapping(root, string.Empty, "admin", "drainTimeout", "shutdownDelay", "limits", "tcp", "node", "locality", "cluster", "dns", "intercept", "listeners", "services");
        if (fields is null)
        {
            return null;
        }

        var admin = fields.TryGetValue("admin", out var adminNode) ? ReadAdmin(reader, adminNode) : null;
        var drainTimeout = reader.Duration(fields, string.Empty, "drainTimeout", TimeSpan.FromSeconds(30), TimeSpan.Zero);
        var shutdownDelay = reader.Duration(fields, string.Empty, "shutdownDelay", TimeSpan.Zero, TimeSpan.Zero);
        var tcp = ReadTcp(reader, fields.GetValueOrDefault("tcp"));
        var limits = fields.TryGetValue("limits", out var limitsNode) ? ReadLimits(reader, limitsNode) : null;
        var node = fields.TryGetValue("node", out var nodeNode) ? NodeConfigReader.Read(reader, nodeNode, file) : null;
        var cluster = fields.TryGetValue("cluster", out var clusterNode) ? ClusterConfigReader.Read(reader, clusterNode, file) : null;
        var locality = LocalityConfigReader.Read(reader, fields.GetValueOrDefault("locality"), node?.Name);
        var dns = fields.TryGetValue("dns", out var dnsNode) ? DnsConfigReader.Read(reader, dnsNode, cluster?.Domain ?? "cluster.local") : null;
        var intercept = fields.TryGetValue("intercept", out var interceptNode) ? InterceptConfigReader.Read(reader, interceptNode, admin) : null;
        var vips = new VipClaims();
        var services = fields.TryGetValue("services", out var servicesNode)
            ? ReadServices(reader, servicesNode, node, fields.ContainsKey("node"), locality, fields.ContainsKey("locality"), vips)
            : new Dictionary<string, ServiceConfig>(StringComparer.Ordinal);
        // A node proxy that only intercepts needs no listeners of its own.
        if (!fields.TryGetValue("listeners", out var listenersNode) && fields.ContainsKey("intercept"))
        {
            listenersNode = new YamlSequenceNode();
        }
        else if (listenersNode is null)
        {
            reader.Error(root, "listeners", "is required: a list of listeners, each with name, listen, protocol and service");
            return null;
        }

        var catalog = new ServiceCatalog(services, fields.ContainsKey("cluster"));
        var listeners = ReadListeners(reader, listenersNode, catalog, admin, file, vips);
        InterceptConfigReader.Validate(reader, intercept, vips);
        InterceptConfigReader.AddListener(reader, interceptNode, intercept, listeners);
        return new ForwarderConfig(file, digest, admin, drainTimeout, tcp, listeners, services, node, shutdownDelay, limits, cluster, dns, locality, intercept);
    }

    internal static AdminConfig? ReadAdmin(YamlFieldReader reader, YamlNode node)
    {
        var fields = reader.Mapping(node, "admin", "listen");
        var listen = fields is null ? null : reader.String(fields, "admin", "listen", required: true, node);
        if (listen is null)
        {
            return null;
        }

        if (!ValueParsers.TryParseListenAddress(listen, out var endPoint))
        {
            reader.Error(fields!["listen"], "admin.listen", $"expected IP:PORT such as 127.0.0.1:9901, got '{listen}'");
            return null;
        }

        return new AdminConfig(listen, endPoint);
    }

    private static LimitsConfig ReadLimits(YamlFieldReader reader, YamlNode node)
    {
        var fields = reader.Mapping(node, "limits", "maxConnections") ?? [];
        return new LimitsConfig(reader.OptionalInt(fields, "limits", "maxConnections", 1, 1 << 28));
    }

    private static TcpConfig ReadTcp(YamlFieldReader reader, YamlNode? node)
    {
        var fields = node is null
            ? []
            : reader.Mapping(node, "tcp", "engine", "noDelay", "receiveBufferSize", "sendBufferSize", "maxBufferedBytes", "blockSize", "directSend", "waitForData", "inlineCompletions", "ioThreads") ?? [];
        return new TcpConfig(
            Engine: reader.Parsed(fields, "tcp", "engine", TcpEngine.Epoll, "epoll or pipes",
                (string text, out TcpEngine engine) =>
                {
                    engine = text == "pipes" ? TcpEngine.Pipes : TcpEngine.Epoll;
                    return text is "epoll" or "pipes";
                }),
            NoDelay: reader.Bool(fields, "tcp", "noDelay", true),
            ReceiveBufferSize: reader.Size(fields, "tcp", "receiveBufferSize", null, 4096, 64 << 20),
            SendBufferSize: reader.Size(fields, "tcp", "sendBufferSize", null, 4096, 64 << 20),
            MaxBufferedBytes: reader.Size(fields, "tcp", "maxBufferedBytes", 1 << 20, 4096, 1 << 30)!.Value,
            BlockSize: reader.Size(fields, "tcp", "blockSize", 64 << 10, 1024, 1 << 20)!.Value,
            DirectSend: reader.Bool(fields, "tcp", "directSend", true),
            WaitForData: reader.Bool(fields, "tcp", "waitForData", true),
            InlineCompletions: reader.Bool(fields, "tcp", "inlineCompletions", true),
            IoThreads: reader.OptionalInt(fields, "tcp", "ioThreads", 1, 256));
    }

    private static Dictionary<string, ServiceConfig> ReadServices(YamlFieldReader reader, YamlNode node, NodeConfig? self, bool hasNodeSection, LocalityConfig locality, bool hasLocalitySection, VipClaims vips)
    {
        var services = new Dictionary<string, ServiceConfig>(StringComparer.Ordinal);
        var entries = reader.Mapping(node, "services");
        foreach (var (name, serviceNode) in entries ?? [])
        {
            var path = $"services.{name}";
            if (!IsValidName(name))
            {
                reader.Error(serviceNode, path, $"service names may use {ValidName}");
            }

            var fields = reader.Mapping(serviceNode, path, "lb", "healthCheck", "outlierDetection", "connectTimeout", "connectAttempts", "idleTimeout", "http", "endpoints", "export", "vips", "appProtocol");
            if (fields is null)
            {
                continue;
            }

            var lb = LbConfigReader.Read(reader, fields.GetValueOrDefault("lb"), path, locality);
            var healthCheck = HealthConfigReader.ReadHealthCheck(reader, fields.GetValueOrDefault("healthCheck"), path);
            var outlierDetection = HealthConfigReader.ReadOutlierDetection(reader, fields.GetValueOrDefault("outlierDetection"), path);
            var endpoints = EndpointConfigReader.Read(reader, fields, serviceNode, path, self, hasNodeSection, hasLocalitySection);
            var export = NodeConfigReader.ReadExport(reader, fields, path, self, hasNodeSection, endpoints);
            var (vipList, udpVips) = InterceptConfigReader.ReadVips(reader, fields, path, vips, allowUdp: true);
            if (udpVips is not null && endpoints.FirstOrDefault(e => e.EndPoint is NodeEndPoint) is { } remote)
            {
                reader.Error(fields["vips"], $"{path}.vips", $"endpoint {remote.Address} is on node '{remote.Node}'; udp is forwarded to endpoints on this node only");
            }

            services[name] = new ServiceConfig(
                name,
                lb,
                healthCheck,
                outlierDetection,
                ConnectTimeout: reader.Duration(fields, path, "connectTimeout", TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1)),
                ConnectAttempts: reader.Int(fields, path, "connectAttempts", 3, 1, 100),
                IdleTimeout: reader.Duration(fields, path, "idleTimeout", TimeSpan.FromHours(1), TimeSpan.Zero),
                ReadUpstreamHttp(reader, fields.GetValueOrDefault("http"), $"{path}.http"),
                endpoints,
                export,
                Vips: vipList,
                AppProtocol: InterceptConfigReader.ReadAppProtocol(reader, fields, path, serviceNode),
                UdpVips: udpVips);
        }

        return services;
    }

    private static UpstreamHttpConfig ReadUpstreamHttp(YamlFieldReader reader, YamlNode? node, string path)
    {
        var fields = node is null ? null : reader.Mapping(node, path, "maxIdleConnections", "keepAliveTimeout", "version", "maxConnections");
        if (fields is null)
        {
            return UpstreamHttpConfig.Default;
        }

        return new UpstreamHttpConfig(
            reader.Int(fields, path, "maxIdleConnections", UpstreamHttpConfig.Default.MaxIdleConnections, 0, 1_000_000),
            reader.Duration(fields, path, "keepAliveTimeout", UpstreamHttpConfig.Default.KeepAliveTimeout, TimeSpan.FromMilliseconds(1)),
            reader.Parsed(fields, path, "version", UpstreamHttpConfig.Default.Version, "1.1 or 2",
                (string text, out System.Version version) =>
                {
                    version = text == "2" ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11;
                    return text is "1.1" or "2";
                }),
            reader.Int(fields, path, "maxConnections", 0, 0, 1_000_000));
    }

    private static List<ListenerConfig> ReadListeners(YamlFieldReader reader, YamlNode node, ServiceCatalog services, AdminConfig? admin, string file, VipClaims vips)
    {
        var listeners = new List<ListenerConfig>();
        var sequence = reader.Sequence(node, "listeners");
        for (var i = 0; sequence is not null && i < sequence.Children.Count; i++)
        {
            var path = $"listeners[{i}]";
            var item = sequence.Children[i];
            var fields = reader.Mapping(item, path, "name", "listen", "protocol", "service", "maxConnections", "routes", "http", "tls", "udp", "vips");
            if (fields is null)
            {
                continue;
            }

            var name = reader.String(fields, path, "name", required: true, item);
            var listen = reader.String(fields, path, "listen", required: true, item);
            var protocolText = reader.String(fields, path, "protocol", required: false, item) ?? "tcp";
            var service = reader.String(fields, path, "service", required: false, item);
            var maxConnections = reader.Int(fields, path, "maxConnections", DefaultMaxConnections, 1, 10_000_000);

            if (name is not null && !IsValidName(name))
            {
                reader.Error(fields["name"], $"{path}.name", $"listener names may use {ValidName}");
            }

            if (name is not null && listeners.Any(l => l.Name == name))
            {
                reader.Error(fields["name"], $"{path}.name", $"another listener is already named '{name}'");
            }

            ListenerProtocol? protocol = protocolText switch
            {
                "tcp" => ListenerProtocol.Tcp,
                "echo" => ListenerProtocol.Echo,
                "http" => ListenerProtocol.Http,
                "udp" => ListenerProtocol.Udp,
                _ => null,
            };
            if (protocol is null)
            {
                reader.Error(fields["protocol"], $"{path}.protocol", $"expected tcp, udp, http or echo, got '{protocolText}'");
            }

            var forwards = protocol is ListenerProtocol.Tcp or ListenerProtocol.Udp;
            if (forwards && service is null && !fields.ContainsKey("service"))
            {
                reader.Error(item, $"{path}.service", $"is required for a {protocolText} listener: the name of a service under 'services'");
            }
            else if (forwards && service is not null && !services.Knows(service, udp: protocol == ListenerProtocol.Udp))
            {
                reader.Error(fields["service"], $"{path}.service", $"no service named '{service}' ({services.Describe()})");
            }
            else if (protocol == ListenerProtocol.Echo && service is not null)
            {
                reader.Error(fields["service"], $"{path}.service", "an echo listener answers by itself and takes no service");
            }
            else if (protocol == ListenerProtocol.Http && service is not null)
            {
                reader.Error(fields["service"], $"{path}.service", "an http listener picks services by its routes; use routes: [{service: NAME}]");
            }

            foreach (var httpOnly in new[] { "routes", "http", "tls", "vips" })
            {
                if (protocol is not ListenerProtocol.Http and not null && fields.TryGetValue(httpOnly, out var httpOnlyNode))
                {
                    reader.Error(httpOnlyNode, $"{path}.{httpOnly}", "applies to http listeners only");
                }
            }

            if (protocol is not ListenerProtocol.Udp and not null && fields.TryGetValue("udp", out var udpNode))
            {
                reader.Error(udpNode, $"{path}.udp", "applies to udp listeners only");
            }
            else if (protocol == ListenerProtocol.Udp && fields.TryGetValue("maxConnections", out var maxNode))
            {
                reader.Error(maxNode, $"{path}.maxConnections", "a udp listener has sessions, not connections: use udp.maxSessions");
            }

            var http = protocol == ListenerProtocol.Http ? HttpListenerReader.Read(reader, fields, item, path, services) : null;
            var udp = protocol == ListenerProtocol.Udp ? UdpListenerReader.Read(reader, fields, path, service is null ? null : services.InFile(service)) : null;
            var tls = protocol == ListenerProtocol.Http && fields.TryGetValue("tls", out var tlsNode) ? TlsConfigReader.Read(reader, tlsNode, $"{path}.tls", file) : null;

            IPEndPoint? endPoint = null;
            if (listen is not null && !ValueParsers.TryParseListenAddress(listen, out endPoint))
            {
                reader.Error(fields["listen"], $"{path}.listen", $"expected IP:PORT such as 127.0.0.1:7000, [::1]:7000 or *:7000, got '{listen}'");
            }
            else if (endPoint is not null && endPoint.Port != 0 && listeners.Any(l => l.Listen == listen && (l.Protocol == ListenerProtocol.Udp) == (protocol == ListenerProtocol.Udp)))
            {
                reader.Error(fields["listen"], $"{path}.listen", $"another listener already listens on {listen}");
            }
            else if (endPoint is not null && endPoint.Port != 0 && admin is not null && admin.EndPoint.Equals(endPoint))
            {
                reader.Error(fields["listen"], $"{path}.listen", $"{listen} is the admin endpoint's address");
            }

            if (name is not null && endPoint is not null && protocol is not null)
            {
                var listenerVips = protocol == ListenerProtocol.Http ? InterceptConfigReader.ReadVips(reader, fields, path, vips, allowUdp: false).Tcp : null;
                listeners.Add(new ListenerConfig(name, listen!, endPoint, protocol.Value, service, maxConnections, http, tls, udp, listenerVips));
            }
        }

        return listeners;
    }

    internal static bool IsValidName(string name)
        => name.Length is > 0 and <= 128 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
