using System.Security.Cryptography;
using Forwarder.Tls;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>node</c> section: name, optional listen address, certificate, key, CA and peers.</summary>
internal static class NodeConfigReader
{
    public static NodeConfig? Read(YamlFieldReader reader, YamlNode node, string configFile)
    {
        const string Section = "node";
        var fields = reader.Mapping(node, Section, "name", "listen", "certificate", "key", "ca", "peers");
        if (fields is null)
        {
            return null;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(configFile)) ?? Directory.GetCurrentDirectory();
        var name = reader.String(fields, Section, "name", required: true, node);
        if (name is not null && !ConfigLoader.IsValidName(name))
        {
            reader.Error(fields["name"], "node.name", "node names may use letters, digits, - _ . (the DNS name in the node's certificate)");
        }

        var listen = reader.String(fields, Section, "listen", required: false, node);
        System.Net.IPEndPoint? listenEndPoint = null;
        if (listen is not null && !ValueParsers.TryParseListenAddress(listen, out listenEndPoint))
        {
            reader.Error(fields["listen"], "node.listen", $"expected IP:PORT such as 0.0.0.0:7443, got '{listen}'");
        }

        var certificate = reader.String(fields, Section, "certificate", required: true, node);
        var key = reader.String(fields, Section, "key", required: true, node);
        var authority = reader.String(fields, Section, "ca", required: true, node);
        CertificateFiles? identity = null;
        if (certificate is not null && key is not null)
        {
            identity = new CertificateFiles(Path.GetFullPath(certificate, folder), Path.GetFullPath(key, folder));
            try
            {
                using var loaded = CertificateChain.Load(identity);
                if (name is not null && !loaded.IsFor(name))
                {
                    reader.Error(fields["certificate"], "node.certificate", $"{identity.Certificate} is not for node '{name}' (it names {string.Join(", ", loaded.DnsNames)}); peers would refuse it");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                reader.Error(fields["certificate"], "node.certificate", $"cannot load {identity.Certificate} with key {identity.Key}: {ex.Message}");
            }
        }

        string? authorityPath = null;
        if (authority is not null)
        {
            authorityPath = Path.GetFullPath(authority, folder);
            try
            {
                foreach (var issuer in Tunnels.NodeCredentials.LoadAuthority(authorityPath))
                {
                    issuer.Dispose();
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                reader.Error(fields["ca"], "node.ca", $"cannot load the CA certificate {authorityPath}: {ex.Message}");
            }
        }

        var peers = ReadPeers(reader, fields, name);
        return name is null || identity is null || authorityPath is null ? null : new NodeConfig(name, listen, listenEndPoint, identity, authorityPath, peers);
    }

    private static List<PeerConfig> ReadPeers(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string? self)
    {
        List<PeerConfig> peers = [];
        if (!fields.TryGetValue("peers", out var node) || reader.Sequence(node, "node.peers") is not { } sequence)
        {
            return peers;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = $"node.peers[{i}]";
            var item = sequence.Children[i];
            if (reader.Mapping(item, path, "name", "address") is not { } peer)
            {
                continue;
            }

            var name = reader.String(peer, path, "name", required: true, item);
            var address = reader.String(peer, path, "address", required: true, item);
            if (name is null || address is null)
            {
                continue;
            }

            if (name == self || peers.Any(p => p.Name == name))
            {
                reader.Error(peer["name"], $"{path}.name", name == self ? "is this node's own name" : $"peer '{name}' is listed twice");
                continue;
            }

            if (!ValueParsers.TryParseEndpointAddress(address, out var endPoint))
            {
                reader.Error(peer["address"], $"{path}.address", $"expected HOST:PORT of the peer's node listener, got '{address}'");
                continue;
            }

            peers.Add(new PeerConfig(name, address, endPoint));
        }

        return peers;
    }
}
