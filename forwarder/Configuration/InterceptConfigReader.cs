using System.Globalization;
using System.Net;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads the <c>intercept</c> section and the <c>vips</c> of services and http listeners, and
/// checks that every VIP is served by exactly one of them.
/// </summary>
internal static class InterceptConfigReader
{
    private const string Section = "intercept";
    private const string UdpSuffix = "/udp";
    private const string TcpSuffix = "/tcp";

    public static InterceptConfig? Read(YamlFieldReader reader, YamlNode node, AdminConfig? admin)
    {
        var fields = node is YamlScalarNode { Value: null or "" } ? [] : reader.Mapping(node, Section, "listen", "mode", "manageRules", "mark", "capture", "maxConnections");
        if (fields is null)
        {
            return null;
        }

        var listen = reader.String(fields, Section, "listen", required: false, node) ?? InterceptConfig.DefaultListen;
        if (!ValueParsers.TryParseListenAddress(listen, out var endPoint) || endPoint.Port == 0)
        {
            reader.Error(fields.GetValueOrDefault("listen") ?? node, $"{Section}.listen", $"expected IP:PORT with a fixed port, such as [::]:15001 or 0.0.0.0:15001 (the rules redirect to it), got '{listen}'");
            return null;
        }

        if (admin is not null && admin.EndPoint.Equals(endPoint))
        {
            reader.Error(fields["listen"], $"{Section}.listen", $"{listen} is the admin endpoint's address");
        }

        var mode = reader.Parsed(fields, Section, "mode", InterceptMode.Redirect, "redirect or tproxy",
            (string text, out InterceptMode value) =>
            {
                value = text == "tproxy" ? InterceptMode.Tproxy : InterceptMode.Redirect;
                return text is "redirect" or "tproxy";
            });
        var mark = reader.Parsed(fields, Section, "mark", InterceptConfig.DefaultMark, "a non-zero packet mark such as 0x4657 or 18007", TryParseMark);
        var maxConnections = reader.Int(fields, Section, "maxConnections", ConfigLoader.DefaultMaxConnections, 1, 10_000_000);
        var listener = new ListenerConfig(InterceptConfig.ListenerName, listen, endPoint, ListenerProtocol.Intercept, null, maxConnections, null);
        return new InterceptConfig(listener, mode, reader.Bool(fields, Section, "manageRules", true), mark, ReadCapture(reader, fields));
    }

    /// <summary>
    /// The <c>vips</c> of a service or listener at <paramref name="path"/>: literal IP:PORT each,
    /// with <c>/udp</c> for a UDP VIP (services only, when <paramref name="allowUdp"/>), claimed
    /// in <paramref name="claims"/> so that a VIP names one owner only.
    /// </summary>
    public static (List<IPEndPoint>? Tcp, List<IPEndPoint>? Udp) ReadVips(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string path, VipClaims claims, bool allowUdp)
    {
        if (!fields.TryGetValue("vips", out var node) || reader.Sequence(node, $"{path}.vips") is not { } sequence)
        {
            return (null, null);
        }

        List<IPEndPoint> tcp = [];
        List<IPEndPoint> udp = [];
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            var itemPath = $"{path}.vips[{i}]";
            var text = (item as YamlScalarNode)?.Value ?? string.Empty;
            var isUdp = text.EndsWith(UdpSuffix, StringComparison.Ordinal);
            var address = isUdp ? text[..^UdpSuffix.Length] : text.EndsWith(TcpSuffix, StringComparison.Ordinal) ? text[..^TcpSuffix.Length] : text;
            if (!IPEndPoint.TryParse(address, out var vip) || vip.Port == 0 || !address.Contains(':', StringComparison.Ordinal) || IsWildcard(vip.Address))
            {
                reader.Error(item, itemPath, $"expected a service IP and port such as 10.96.0.10:80, [fd00::10]:80 or 10.96.0.10:53/udp, got '{text}'");
                continue;
            }

            if (isUdp && !allowUdp)
            {
                reader.Error(item, itemPath, $"{text}: an http listener serves TCP only; put a UDP VIP on the service the datagrams go to");
                continue;
            }

            vip = Normalize(vip);
            if (claims.TryClaim(vip, isUdp, path, item, itemPath) is { } owner)
            {
                reader.Error(item, itemPath, $"{text} is already a VIP of {owner}; a VIP picks one service");
                continue;
            }

            (isUdp ? udp : tcp).Add(vip);
        }

        return (tcp, udp.Count > 0 ? udp : null);
    }

    /// <summary>VIPs without an intercept section would do nothing; a TCP one on the intercept port would loop (UDP VIPs get ports of their own).</summary>
    public static void Validate(YamlFieldReader reader, InterceptConfig? intercept, VipClaims claims)
    {
        foreach (var (vip, udp, node, path) in claims.All)
        {
            if (intercept is null)
            {
                reader.Error(node, path, "applies only with an intercept section (intercept: {} for the defaults)");
            }
            else if (!udp && vip.Port == intercept.Listener.EndPoint.Port)
            {
                reader.Error(node, path, $"{vip} has the intercept listener's port {vip.Port}; connections to it would loop");
            }
        }
    }

    /// <summary>A service's <c>appProtocol</c>: tcp (the default), or http, h2c or grpc for the L7 path.</summary>
    public static string? ReadAppProtocol(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string path, YamlNode owner)
    {
        var text = reader.String(fields, path, "appProtocol", required: false, owner);
        if (text is not null && text != "tcp" && !IsHttp(text))
        {
            reader.Error(fields["appProtocol"], $"{path}.appProtocol", $"expected tcp, http, h2c or grpc, got '{text}'");
            return null;
        }

        return text;
    }

    /// <summary>Adds the intercept listener to the file's listeners, unless one of them has its name or address.</summary>
    public static void AddListener(YamlFieldReader reader, YamlNode? node, InterceptConfig? intercept, List<ListenerConfig> listeners)
    {
        if (intercept is null || node is null)
        {
            return;
        }

        var listener = intercept.Listener;
        if (listeners.FirstOrDefault(l => l.Name == listener.Name || (l.Protocol != ListenerProtocol.Udp && l.EndPoint.Port == listener.EndPoint.Port)) is { } clash)
        {
            reader.Error(node, $"{Section}.listen", clash.Name == listener.Name
                ? $"listener name '{listener.Name}' is the intercept listener's; rename the listener"
                : $"listener '{clash.Name}' already uses port {listener.EndPoint.Port}, where intercepted connections arrive");
            return;
        }

        listeners.Add(listener);
    }

    /// <summary>Whether an appProtocol (Kubernetes' names, or the file's) makes intercepted connections L7.</summary>
    public static bool IsHttp(string? appProtocol) => appProtocol is "http" or "h2c" or "grpc" or "kubernetes.io/h2c" or "kubernetes.io/http";

    /// <summary>IPv4-mapped IPv6 addresses become IPv4, as the kernel reports them for dual-stack sockets.</summary>
    public static IPEndPoint Normalize(IPEndPoint endPoint)
        => endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    private static bool IsWildcard(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);

    private static List<IPNetwork>? ReadCapture(YamlFieldReader reader, Dictionary<string, YamlNode> fields)
    {
        if (!fields.TryGetValue("capture", out var node) || reader.Sequence(node, $"{Section}.capture") is not { } sequence)
        {
            return null;
        }

        var networks = new List<IPNetwork>();
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var text = (sequence.Children[i] as YamlScalarNode)?.Value ?? string.Empty;
            if (!IPNetwork.TryParse(text, out var network))
            {
                reader.Error(sequence.Children[i], $"{Section}.capture[{i}]", $"expected a CIDR such as 10.96.0.0/12 or fd00:10:96::/112, got '{text}'");
                continue;
            }

            networks.Add(network);
        }

        return networks;
    }

    private static bool TryParseMark(string text, out int mark)
    {
        var parsed = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? int.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out mark)
            : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out mark);
        return parsed && mark != 0;
    }
}
