using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Tls;
using Forwarder.Tunnels;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>node</c> section: name, optional listen address, certificate, key, CA and peers.</summary>
internal static class NodeConfigReader
{
    public static NodeConfig? Read(YamlFieldReader reader, YamlNode node, string configFile)
    {
        const string Section = "node";
        var fields = reader.Mapping(node, Section, "name", "listen", "certificate", "key", "ca", "peers", "acceptUnlistedPeers", "relays", "keepAlive", "transport", "punchTtl", "relayMode");
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

        var (identity, authorityPath) = ReadIdentity(reader, fields, Section, name, node, folder);
        var peers = ReadPeers(reader, fields, name);
        var relays = ReadRelays(reader, fields);
        var keepAlive = reader.Duration(fields, Section, "keepAlive", NodeConfig.DefaultKeepAlive, TimeSpan.FromMilliseconds(100));
        var acceptUnlisted = reader.Bool(fields, Section, "acceptUnlistedPeers", false);
        var transport = ReadTransport(reader, fields, Section) ?? NodeTransport.Tcp;
        var punchTtl = reader.Int(fields, Section, "punchTtl", NodeConfig.DefaultPunchTtl, 1, 255);
        var relayMode = RelayConfigReader.ReadMode(reader, fields, Section, "relayMode") ?? RelayMode.Splice;
        return name is null || identity is null || authorityPath is null
            ? null
            : new NodeConfig(name, listen, listenEndPoint, identity, authorityPath, peers, relays, keepAlive, acceptUnlisted, transport, punchTtl, relayMode);
    }

    /// <summary>
    /// The certificate, key and CA fields every member of the mesh has: the CA file must hold a
    /// certificate, and the pair must load, be issued by that CA and prove the section's role and
    /// <paramref name="name"/> (<c>forwarder://node/NAME</c> or <c>forwarder://relay/NAME</c>), as
    /// the other ends will check.
    /// </summary>
    internal static (CertificateFiles? Identity, string? Authority) ReadIdentity(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string section, string? name, YamlNode owner, string folder)
    {
        var certificate = reader.String(fields, section, "certificate", required: true, owner);
        var key = reader.String(fields, section, "key", required: true, owner);
        var authority = reader.String(fields, section, "ca", required: true, owner);
        string? authorityPath = null;
        X509Certificate2Collection? issuers = null;
        if (authority is not null)
        {
            authorityPath = Path.GetFullPath(authority, folder);
            try
            {
                issuers = MeshTrust.Load(authorityPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                reader.Error(fields["ca"], YamlFieldReader.Join(section, "ca"), $"cannot load the CA certificate {authorityPath}: {ex.Message}");
            }
        }

        CertificateFiles? identity = null;
        if (certificate is not null && key is not null)
        {
            identity = new CertificateFiles(Path.GetFullPath(certificate, folder), Path.GetFullPath(key, folder));
            var field = YamlFieldReader.Join(section, "certificate");
            try
            {
                using var loaded = CertificateChain.Load(identity);
                var role = section == "relay" ? MeshRole.Relay : MeshRole.Node;
                if (name is not null && MeshIdentity.Mismatch(loaded.Leaf, role, name) is { } mismatch)
                {
                    reader.Error(fields["certificate"], field, $"{identity.Certificate} is not for {section} '{name}': {mismatch}; the other ends would refuse it");
                }

                if (issuers is not null && !IssuedBy(loaded.Leaf, issuers))
                {
                    reader.Error(fields["certificate"], field, $"{identity.Certificate} was not issued by the CA in {authorityPath} ({loaded.Leaf.Issuer}); the other ends would refuse it");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                reader.Error(fields["certificate"], field, $"cannot load {identity.Certificate} with key {identity.Key}: {ex.Message}");
            }
        }

        foreach (var issuer in issuers ?? [])
        {
            issuer.Dispose();
        }

        return (identity, authorityPath);
    }

    /// <summary>Whether <paramref name="leaf"/> chains to one of <paramref name="issuers"/> (as the other ends check it: the leaf against the CA file alone, not the intermediates).</summary>
    private static bool IssuedBy(X509Certificate2 leaf, X509Certificate2Collection issuers)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(issuers);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Checking the node's own files: never fetch an issuer URL (AIA) a certificate may name.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        return chain.Build(leaf);
    }

    /// <summary>
    /// A service's <c>export</c>: whether peers may reach its endpoints on this node. It needs a
    /// node section, and an endpoint on this node to export.
    /// </summary>
    internal static bool ReadExport(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string servicePath, NodeConfig? self, bool hasNodeSection, IReadOnlyList<EndpointConfig> endpoints)
    {
        var export = reader.Bool(fields, servicePath, "export", false);
        if (!export)
        {
            return false;
        }

        var field = YamlFieldReader.Join(servicePath, "export");
        if (!hasNodeSection)
        {
            reader.Error(fields["export"], field, "needs a node section: exported services are reached by peer nodes over node links");
        }
        else if (self is not null && endpoints.Count > 0 && endpoints.All(e => e.Node != self.Name))
        {
            reader.Error(fields["export"], field, $"every endpoint is on another node, so node '{self.Name}' has none to export");
        }

        return export;
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
            if (reader.Mapping(item, path, "name", "address", "transport") is not { } peer)
            {
                continue;
            }

            var name = reader.String(peer, path, "name", required: true, item);
            var address = reader.String(peer, path, "address", required: false, item);
            var transport = ReadTransport(reader, peer, path);
            if (name is null)
            {
                continue;
            }

            if (name == self || peers.Any(p => p.Name == name))
            {
                reader.Error(peer["name"], $"{path}.name", name == self ? "is this node's own name" : $"peer '{name}' is listed twice");
                continue;
            }

            System.Net.EndPoint? endPoint = null;
            if (address is not null && !ValueParsers.TryParseEndpointAddress(address, out endPoint))
            {
                reader.Error(peer["address"], $"{path}.address", $"expected HOST:PORT of the peer's node listener, got '{address}'");
                continue;
            }

            peers.Add(new PeerConfig(name, address, endPoint, transport));
        }

        return peers;
    }

    /// <summary>A <c>transport</c> field: tcp, quic or auto; null when absent (or wrong, which is reported).</summary>
    private static NodeTransport? ReadTransport(YamlFieldReader reader, Dictionary<string, YamlNode> fields, string path)
        => reader.Parsed<NodeTransport?>(fields, path, "transport", null, "tcp, quic or auto",
            (string text, out NodeTransport? transport) =>
            {
                transport = text switch
                {
                    "tcp" => NodeTransport.Tcp,
                    "quic" => NodeTransport.Quic,
                    "auto" => NodeTransport.Auto,
                    _ => null,
                };
                return transport is not null;
            });

    private static List<RelayAddress> ReadRelays(YamlFieldReader reader, Dictionary<string, YamlNode> fields)
    {
        List<RelayAddress> relays = [];
        if (!fields.TryGetValue("relays", out var node) || reader.Sequence(node, "node.relays") is not { } sequence)
        {
            return relays;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = $"node.relays[{i}]";
            var item = sequence.Children[i];
            if (reader.Mapping(item, path, "name", "address") is not { } relay
                || reader.String(relay, path, "name", required: true, item) is not { } name
                || reader.String(relay, path, "address", required: true, item) is not { } address)
            {
                continue;
            }

            if (relays.Any(r => r.Name == name))
            {
                reader.Error(relay["name"], $"{path}.name", $"relay '{name}' is listed twice");
            }
            else if (!ValueParsers.TryParseEndpointAddress(address, out var endPoint))
            {
                reader.Error(relay["address"], $"{path}.address", $"expected HOST:PORT of the relay, got '{address}'");
            }
            else
            {
                relays.Add(new RelayAddress(name, address, endPoint));
            }
        }

        return relays;
    }
}
