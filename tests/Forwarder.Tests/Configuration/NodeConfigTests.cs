using Forwarder.Configuration;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Configuration;

/// <summary>The <c>node</c> section and endpoints' <c>node</c>: what is read, and each mistake at its line and field.</summary>
public sealed class NodeConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-nodeconfig-").FullName;

    public NodeConfigTests()
    {
        using (var authority = MeshAuthority.OpenOrCreate(_directory, TimeSpan.FromDays(1), out _))
        {
            authority.IssueNode("edge-1", _directory, TimeSpan.FromDays(1)).Dispose();
            authority.IssueRelay("relay-1", _directory, TimeSpan.FromDays(1)).Dispose();
        }

        var foreign = Directory.CreateDirectory(Path.Combine(_directory, "foreign")).FullName;
        using var other = MeshAuthority.OpenOrCreate(foreign, TimeSpan.FromDays(1), out _);
        other.IssueNode("edge-1", foreign, TimeSpan.FromDays(1)).Dispose();
    }

    private string ConfigFile => Path.Combine(_directory, "forwarder.yaml");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void ANode_WithPeers_AndEndpointsOnThem()
    {
        var config = Parse(Node(), "- { address: '10.0.0.1:80', node: edge-2 }\n- { address: '10.0.0.2:80' }\n- { address: '10.0.0.3:80', node: edge-1 }");

        var node = config.Node!;
        Assert.Equal("edge-1", node.Name);
        Assert.Equal(7443, node.ListenEndPoint!.Port);
        Assert.Equal(Path.Combine(_directory, "edge-1.pem"), node.Identity.Certificate);
        Assert.Equal(Path.Combine(_directory, "ca.pem"), node.Authority);
        Assert.Equal("edge-2", Assert.Single(node.Peers).Name);

        var endpoints = config.Services["app"].Endpoints;
        var remote = Assert.IsType<NodeEndPoint>(endpoints[0].EndPoint);
        Assert.Equal(("edge-2", "10.0.0.1:80"), (remote.Node, remote.Target));
        Assert.Equal("edge-2", endpoints[0].Node);
        Assert.Equal("edge-1", endpoints[1].Node);
        Assert.IsNotType<NodeEndPoint>(endpoints[1].EndPoint);
        Assert.IsNotType<NodeEndPoint>(endpoints[2].EndPoint);
    }

    [Theory]
    [InlineData("listen", "nowhere", "node.listen", "expected IP:PORT")]
    [InlineData("name", "edge-9", "node.certificate", "is not for node 'edge-9'")]
    [InlineData("ca", "missing.pem", "node.ca", "missing.pem")]
    [InlineData("peers", "[ { name: edge-1, address: '127.0.0.1:1' } ]", "node.peers[0].name", "this node's own name")]
    [InlineData("peers", "[ { name: edge-2, address: nowhere } ]", "node.peers[0].address", "HOST:PORT")]
    [InlineData("acceptUnlistedPeers", "maybe", "node.acceptUnlistedPeers", "true or false")]
    [InlineData("relays", "[ { name: relay-1, address: nowhere } ]", "node.relays[0].address", "HOST:PORT of the relay")]
    [InlineData("relays", "[ { name: relay-1, address: '10.0.0.9:7700' }, { name: relay-1, address: '10.0.0.8:7700' } ]", "node.relays[1].name", "listed twice")]
    [InlineData("relays", "[ { address: '10.0.0.9:7700' } ]", "node.relays[0].name", "required")]
    [InlineData("keepAlive", "10ms", "node.keepAlive", "at least 100ms")]
    [InlineData("transport", "udp", "node.transport", "expected tcp, quic or auto, got 'udp'")]
    [InlineData("punchTtl", "0", "node.punchTtl", "a whole number from 1 to 255, got '0'")]
    [InlineData("punchTtl", "two", "node.punchTtl", "a whole number from 1 to 255, got 'two'")]
    [InlineData("peers", "[ { name: edge-2, address: '10.0.0.2:7443', transport: quick } ]", "node.peers[0].transport", "expected tcp, quic or auto, got 'quick'")]
    [InlineData("relayMode", "tunnel", "node.relayMode", "expected splice or terminate, got 'tunnel'")]
    public void NodeMistakes_AreNamedAtTheirField(string key, string value, string field, string message)
    {
        var yaml = Yaml(Node((key, value)), "- { address: '10.0.0.1:80' }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains($": {field}: ", error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.StartsWith(ConfigFile + ":", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Relays_APeerWithoutAnAddress_TheKeepAlive_AndThePunchTtl_AreRead()
    {
        var node = Parse(Node(("peers", "[ { name: edge-2 } ]"), ("relays", "[ { name: relay-1, address: '198.18.0.10:7700' }, { name: relay-2, address: 'relay.example:7700' } ]"), ("keepAlive", "3s"), ("punchTtl", "4")), "- { address: '10.0.0.1:80', node: edge-2 }").Node!;

        Assert.Null(Assert.Single(node.Peers).EndPoint);
        Assert.Equal(["relay-1", "relay-2"], node.Relays.Select(r => r.Name));
        Assert.Equal(7700, ((System.Net.IPEndPoint)node.Relays[0].EndPoint).Port);
        Assert.Equal(TimeSpan.FromSeconds(3), node.KeepAlive);
        Assert.Equal(4, node.PunchTtl);
        var byDefault = Parse(Node(), "- { address: '10.0.0.1:80' }").Node!;
        Assert.Equal(NodeConfig.DefaultKeepAlive, byDefault.KeepAlive);
        Assert.Equal(2, byDefault.PunchTtl);
        Assert.Equal(RelayMode.Splice, byDefault.RelayMode);
        Assert.Equal(RelayMode.Terminate, Parse(Node(("relayMode", "terminate")), "- { address: '10.0.0.1:80' }").Node!.RelayMode);
    }

    [Fact]
    public void Transport_IsTcpByDefault_WithAPerPeerOverride_AndDecidesWhetherQuicIsAccepted()
    {
        var byDefault = Parse(Node(), "- { address: '10.0.0.1:80' }").Node!;
        Assert.Equal(NodeTransport.Tcp, byDefault.Transport);
        Assert.False(byDefault.AcceptsQuic);

        var peers = "[ { name: edge-2, address: '10.0.0.2:7443' }, { name: edge-3, address: '10.0.0.3:7443', transport: tcp }, { name: edge-4, address: '10.0.0.4:7443', transport: quic } ]";
        var auto = Parse(Node(("transport", "auto"), ("peers", peers)), "- { address: '10.0.0.1:80' }").Node!;
        Assert.Equal(
            [NodeTransport.Auto, NodeTransport.Tcp, NodeTransport.Quic],
            auto.Peers.Select(auto.TransportTo));
        Assert.True(auto.AcceptsQuic);

        // One peer over QUIC is enough for the listener to take QUIC.
        Assert.True(Parse(Node(("peers", peers)), "- { address: '10.0.0.1:80' }").Node!.AcceptsQuic);
    }

    [Fact]
    public void ChangingTheTransport_IsARestartOnlyChange()
    {
        var running = Parse(Node(), "- { address: '10.0.0.1:80' }");
        var next = Parse(Node(("transport", "quic")), "- { address: '10.0.0.1:80' }");
        Assert.Contains(Forwarder.Runtime.RestartOnlyChanges.Between(running, next), w => w.Contains("transport", StringComparison.Ordinal));
        var peer = Parse(Node(("peers", "[ { name: edge-2, address: '10.0.0.2:7443', transport: quic } ]")), "- { address: '10.0.0.1:80' }");
        var peerAgain = Parse(Node(("peers", "[ { name: edge-2, address: '10.0.0.2:7443' } ]")), "- { address: '10.0.0.1:80' }");
        Assert.NotEmpty(Forwarder.Runtime.RestartOnlyChanges.Between(peer, peerAgain));
        Assert.Empty(Forwarder.Runtime.RestartOnlyChanges.Between(peer, Parse(Node(("peers", "[ { name: edge-2, address: '10.0.0.2:7443', transport: quic } ]")), "- { address: '10.0.0.1:80' }")));
    }

    [Fact]
    public void ANodeCertificateFromAnotherCa_IsAnError_NamingTheFileAndTheCa()
    {
        var yaml = Yaml(Node(("certificate", "foreign/edge-1.pem"), ("key", "foreign/edge-1.key")), "- { address: '10.0.0.1:80' }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains($"node.certificate: {Path.Combine(_directory, "foreign", "edge-1.pem")} was not issued by the CA in {Path.Combine(_directory, "ca.pem")}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ARelayCertificate_CannotServeANode()
    {
        var yaml = Yaml(Node(("certificate", "relay-1.pem"), ("key", "relay-1.key")), "- { address: '10.0.0.1:80' }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains($"node.certificate: {Path.Combine(_directory, "relay-1.pem")} is not for node 'edge-1': it is for forwarder://relay/relay-1, not forwarder://node/edge-1", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheCliCheck_RejectsANodeCertificateFromAnotherCa()
    {
        File.WriteAllText(ConfigFile, Yaml(Node(("certificate", "foreign/edge-1.pem"), ("key", "foreign/edge-1.key")), "- { address: '10.0.0.1:80' }"));
        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("--config", ConfigFile, "--check");
        Assert.Equal(2, exitCode);
        Assert.Contains($"{Path.Combine(_directory, "foreign", "edge-1.pem")} was not issued by the CA", errors, StringComparison.Ordinal);
    }

    [Fact]
    public void PeerAdmission_IsListedPeersOnly_UnlessUnlistedAreAccepted()
    {
        var listed = Parse(Node(), "- { address: '10.0.0.1:80' }").Node!;
        Assert.False(listed.AcceptUnlistedPeers);
        Assert.Null(listed.Refuses("edge-2"));
        Assert.Contains("node 'edge-7' is not in node.peers", listed.Refuses("edge-7"), StringComparison.Ordinal);
        Assert.Null(Parse(Node(("acceptUnlistedPeers", "true")), "- { address: '10.0.0.1:80' }").Node!.Refuses("edge-7"));
    }

    [Fact]
    public void APeerWithoutAnAddress_NorRelays_MayDialIn_ButEndpointsOnItAreErrors()
    {
        var node = Parse(Node(("peers", "[ { name: edge-2 } ]")), "- { address: '10.0.0.1:80' }").Node!;
        Assert.Null(Assert.Single(node.Peers).EndPoint);

        var yaml = Yaml(Node(("peers", "[ { name: edge-2 } ]")), "- { address: '10.0.0.1:80', node: edge-2 }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains("services.app.endpoints[0].node: node 'edge-2' has no address in node.peers and node.relays lists none, so it cannot be reached", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_IsOffByDefault_AndReadPerService()
    {
        Assert.False(Parse(Node(), "- { address: '10.0.0.1:80' }").Services["app"].Export);
        Assert.True(ConfigLoader.Parse(Yaml(Node(), "- { address: '10.0.0.1:80' }", export: true), ConfigFile).Services["app"].Export);
    }

    [Theory]
    [InlineData(false, "- { address: '10.0.0.1:80' }", "needs a node section")]
    [InlineData(true, "- { address: '10.0.0.1:80', node: edge-2 }", "every endpoint is on another node, so node 'edge-1' has none to export")]
    public void Export_WithNothingToExport_IsAnError(bool withNode, string endpoints, string message)
    {
        var yaml = Yaml(withNode ? Node() : string.Empty, endpoints, export: true);
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains($"services.app.export: {message}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEndpointOnAnUnknownNode_IsAnError_ThatListsThePeers()
    {
        var yaml = Yaml(Node(), "- { address: '10.0.0.1:80', node: edge-7 }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains("services.app.endpoints[0].node: no node named 'edge-7' (this node is 'edge-1'; peers: edge-2)", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEndpointOnANode_WithoutANodeSection_IsAnError()
    {
        var yaml = Yaml(string.Empty, "- { address: '10.0.0.1:80', node: edge-2 }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains("no node named 'edge-2' (there is no node section)", error, StringComparison.Ordinal);
    }

    private ForwarderConfig Parse(string node, string endpoints) => ConfigLoader.Parse(Yaml(node, endpoints), ConfigFile);

    /// <summary>A valid node section, with <paramref name="overrides"/> replacing its fields.</summary>
    private static string Node(params (string Key, string Value)[] overrides)
    {
        var fields = new Dictionary<string, string>
        {
            ["name"] = "edge-1",
            ["listen"] = "0.0.0.0:7443",
            ["certificate"] = "edge-1.pem",
            ["key"] = "edge-1.key",
            ["ca"] = "ca.pem",
            ["peers"] = "[ { name: edge-2, address: '198.18.0.2:7443' } ]",
        };
        foreach (var (key, value) in overrides)
        {
            fields[key] = value;
        }

        return "node:\n" + string.Join("\n", fields.Select(f => $"  {f.Key}: {f.Value}"));
    }

    private static string Yaml(string node, string endpoints, bool export = false) => $"""
        {node}
        listeners:
          - name: front
            listen: 127.0.0.1:7000
            service: app
        services:
          app:
            export: {(export ? "true" : "false")}
            endpoints:
        {L7.Http1ProxyTests.Indent(endpoints, 6)}
        """;
}
