using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>udp</c> section of a udp listener and checks its service can carry datagrams.</summary>
internal static class UdpListenerReader
{
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromSeconds(30);
    public const int DefaultMaxSessions = 10_000;

    /// <summary>The listener's udp settings (defaults when the section is absent).</summary>
    public static UdpListenerConfig Read(YamlFieldReader reader, Dictionary<string, YamlNode> listener, string path, ServiceConfig? service)
    {
        var udpPath = $"{path}.udp";
        var fields = listener.TryGetValue("udp", out var node) ? reader.Mapping(node, udpPath, "idleTimeout", "maxSessions") ?? [] : [];
        var config = new UdpListenerConfig(
            reader.Duration(fields, udpPath, "idleTimeout", DefaultIdleTimeout, TimeSpan.FromMilliseconds(10)),
            reader.Int(fields, udpPath, "maxSessions", DefaultMaxSessions, 1, 1_000_000));
        foreach (var endpoint in service?.Endpoints ?? [])
        {
            if (endpoint.EndPoint is NodeEndPoint)
            {
                reader.Error(listener["service"], $"{path}.service", $"service '{service!.Name}' has endpoint {endpoint.Address} on node '{endpoint.Node}'; udp is forwarded to endpoints on this node only");
                break;
            }
        }

        return config;
    }
}
