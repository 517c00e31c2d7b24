using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads a service's <c>endpoints</c>: address, weight, and where each runs (node, zone).</summary>
internal static class EndpointConfigReader
{
    /// <remarks>
    /// An endpoint's <c>node</c> is the node hosting it. With a node section, one on another node
    /// is reached over the link to it; without one but with a locality section, it is dialled
    /// directly (as discovered pods are) and the name only places it for locality.
    /// </remarks>
    public static List<EndpointConfig> Read(YamlFieldReader reader, Dictionary<string, YamlNode> fields, YamlNode serviceNode, string servicePath, NodeConfig? self, bool hasNodeSection, bool hasLocalitySection)
    {
        var endpoints = new List<EndpointConfig>();
        var path = $"{servicePath}.endpoints";
        if (!fields.TryGetValue("endpoints", out var node))
        {
            reader.Error(serviceNode, path, "is required: a list of endpoints, each with an address such as 127.0.0.1:9000");
            return endpoints;
        }

        var sequence = reader.Sequence(node, path);
        if (sequence is null)
        {
            return endpoints;
        }

        if (sequence.Children.Count == 0)
        {
            reader.Error(sequence, path, "needs at least one endpoint");
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var itemPath = $"{path}[{i}]";
            var item = sequence.Children[i];
            var endpointFields = reader.Mapping(item, itemPath, "address", "weight", "node", "zone");
            if (endpointFields is null)
            {
                continue;
            }

            var address = reader.String(endpointFields, itemPath, "address", required: true, item);
            var weight = reader.Int(endpointFields, itemPath, "weight", 1, 1, 10_000);
            if (address is null)
            {
                continue;
            }

            if (!ValueParsers.TryParseEndpointAddress(address, out var endPoint))
            {
                reader.Error(endpointFields["address"], $"{itemPath}.address", $"expected HOST:PORT such as 127.0.0.1:9000, [::1]:9000 or backend.local:9000, got '{address}'");
                continue;
            }

            if (endpoints.Any(e => e.Address == address))
            {
                reader.Error(endpointFields["address"], $"{itemPath}.address", $"'{address}' is listed twice; give it a higher weight instead");
                continue;
            }

            var host = reader.String(endpointFields, itemPath, "node", required: false, item);
            if (host is not null && host != self?.Name && (hasNodeSection || !hasLocalitySection))
            {
                if (self?.Peer(host) is null)
                {
                    // Without a readable node section its own errors say what is wrong; this one would only repeat them.
                    if (!hasNodeSection || self is not null)
                    {
                        var known = self is null ? "there is no node section" : self.Peers.Count == 0 ? $"this node is '{self.Name}' and has no peers" : $"this node is '{self.Name}'; peers: {string.Join(", ", self.Peers.Select(p => p.Name))}";
                        reader.Error(endpointFields["node"], $"{itemPath}.node", $"no node named '{host}' ({known})");
                    }

                    continue;
                }

                if (self.Peer(host) is { Address: null } && self.Relays.Count == 0)
                {
                    reader.Error(endpointFields["node"], $"{itemPath}.node", $"node '{host}' has no address in node.peers and node.relays lists none, so it cannot be reached");
                    continue;
                }

                endPoint = new NodeEndPoint(host, address);
            }

            var zone = reader.String(endpointFields, itemPath, "zone", required: false, item);
            endpoints.Add(new EndpointConfig(address, endPoint, weight, host ?? self?.Name, zone));
        }

        return endpoints;
    }
}
