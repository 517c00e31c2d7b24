using Forwarder.Configuration;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Configuration;

/// <summary>The <c>node</c> section and endpoints' <c>node</c>: what is read, and each mistake at its line and field.</summary>
public sealed class NodeConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-nodeconfig-").FullName;

    public NodeConfigTests()
    {
        using var authority = MeshAuthority.OpenOrCreate(_directory, TimeSpan.FromDays(1), out _);
        authority.IssueNode("edge-1", _directory, TimeSpan.FromDays(1)).Dispose();
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
    [InlineData("peers", "[ { name: edge-2 } ]", "node.peers", "peer 'edge-2' has no address, so it can only be reached through a relay, and node.relays lists none")]
    [InlineData("relays", "[ { name: relay-1, address: nowhere } ]", "node.relays[0].address", "HOST:PORT of the relay")]
    [InlineData("relays", "[ { name: relay-1, address: '10.0.0.9:7700' }, { name: relay-1, address: '10.0.0.8:7700' } ]", "node.relays[1].name", "listed twice")]
    [InlineData("relays", "[ { address: '10.0.0.9:7700' } ]", "node.relays[0].name", "required")]
    [InlineData("keepAlive", "10ms", "node.keepAlive", "at least 100ms")]
    public void NodeMistakes_AreNamedAtTheirField(string key, string value, string field, string message)
    {
        var yaml = Yaml(Node((key, value)), "- { address: '10.0.0.1:80' }");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors).ToString();
        Assert.Contains($": {field}: ", error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.StartsWith(ConfigFile + ":", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Relays_APeerWithoutAnAddress_AndTheKeepAlive_AreRead()
    {
        var node = Parse(Node(("peers", "[ { name: edge-2 } ]"), ("relays", "[ { name: relay-1, address: '198.18.0.10:7700' }, { name: relay-2, address: 'relay.example:7700' } ]"), ("keepAlive", "3s")), "- { address: '10.0.0.1:80', node: edge-2 }").Node!;

        Assert.Null(Assert.Single(node.Peers).EndPoint);
        Assert.Equal(["relay-1", "relay-2"], node.Relays.Select(r => r.Name));
        Assert.Equal(7700, ((System.Net.IPEndPoint)node.Relays[0].EndPoint).Port);
        Assert.Equal(TimeSpan.FromSeconds(3), node.KeepAlive);
        Assert.Equal(NodeConfig.DefaultKeepAlive, Parse(Node(), "- { address: '10.0.0.1:80' }").Node!.KeepAlive);
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

    private static string Yaml(string node, string endpoints) => $"""
        {node}
        listeners:
          - name: front
            listen: 127.0.0.1:7000
            service: app
        services:
          app:
            endpoints:
        {L7.Http1ProxyTests.Indent(endpoints, 6)}
        """;
}
