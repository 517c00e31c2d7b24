using System.Net;
using System.Text.Json;
using Forwarder.Cluster;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Cluster;

/// <summary>The <c>cluster</c> section, references to discovered services, and the merge of a cluster state into the file's config.</summary>
public sealed class ClusterConfigTests
{
    private const string Listeners = """
        listeners:
          - { name: web, listen: 127.0.0.1:0, protocol: tcp, service: default/web:80 }
          - name: api
            listen: 127.0.0.1:0
            protocol: http
            routes: [ { service: shop/api:8080 } ]
        """;

    [Fact]
    public void Section_Defaults_AndDiscoveredNamesAccepted()
    {
        var config = ConfigLoader.Parse("cluster:\n  kubernetes: {}\n" + Listeners, "/etc/forwarder/forwarder.yaml");

        var kubernetes = config.Cluster!.Kubernetes;
        Assert.Null(kubernetes.ApiServer);
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/token", kubernetes.TokenFile);
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", kubernetes.CaFile);
        Assert.Empty(kubernetes.Namespaces);
        Assert.Null(kubernetes.CacheFile);
        Assert.Equal("cluster.local", config.Cluster.Domain);
    }

    [Fact]
    public void Listeners_NameDiscoveredPortsOfTheirOwnProtocol()
    {
        var config = ConfigLoader.Parse("cluster:\n  kubernetes: {}\nlisteners:\n  - { name: dns, listen: 127.0.0.1:0, protocol: udp, service: kube-system/kube-dns:53/udp }\n", "f.yaml");

        Assert.Equal("kube-system/kube-dns:53/udp", Assert.Single(config.Listeners).Service);
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse("cluster:\n  kubernetes: {}\nlisteners:\n  - { name: dns, listen: 127.0.0.1:0, protocol: udp, service: kube-system/kube-dns:53/sctp }\n", "f.yaml"));
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse("cluster:\n  kubernetes: {}\nlisteners:\n  - { name: dns, listen: 127.0.0.1:0, protocol: tcp, service: kube-system/kube-dns:53/udp }\n", "f.yaml"));
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse("cluster:\n  kubernetes: {}\nlisteners:\n  - { name: dns, listen: 127.0.0.1:0, protocol: udp, service: kube-system/kube-dns:53 }\n", "f.yaml"));
    }

    [Fact]
    public void DiscoveredNames_WithoutClusterSection_AreUnknownServices()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Listeners, "f.yaml"));

        Assert.Contains(error.Errors, e => e.Line == 2 && e.Field == "listeners[0].service" && e.Message.StartsWith("no service named 'default/web:80'", StringComparison.Ordinal));
        Assert.Contains(error.Errors, e => e.Line == 6 && e.Field == "listeners[1].routes[0].service");
    }

    [Fact]
    public void Mistakes_NamedByFileLineAndField()
    {
        var yaml = """
            cluster:
              kubernetes:
                apiServer: ftp://10.0.0.1
                namespaces: [ default, Bad_Name, default ]
                cacheTime: 5s
            listeners:
              - { name: web, listen: 127.0.0.1:0, protocol: tcp, service: default/web }
            """;

        var errors = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "f.yaml")).Errors.Select(e => e.ToString()).ToArray();

        Assert.Contains(errors, e => e.StartsWith("f.yaml:3:", StringComparison.Ordinal) && e.Contains("cluster.kubernetes.apiServer: expected an http:// or https:// URL", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:4:", StringComparison.Ordinal) && e.Contains("cluster.kubernetes.namespaces[1]: expected a namespace name", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:4:", StringComparison.Ordinal) && e.Contains("cluster.kubernetes.namespaces[2]: 'default' is listed twice", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:5:", StringComparison.Ordinal) && e.Contains("cluster.kubernetes.cacheTime: unknown field", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:7:", StringComparison.Ordinal) && e.Contains("no service named 'default/web'", StringComparison.Ordinal) && e.Contains("NAMESPACE/NAME:PORT", StringComparison.Ordinal));
        Assert.Equal(5, errors.Length);
    }

    [Fact]
    public void Merge_AddsReadyEndpoints_UdpPortsAsUdpServices_PlaceholdersForUndiscovered_FileServicesKept()
    {
        var file = ConfigLoader.Parse("cluster:\n  kubernetes: {}\n" + Listeners + "\nservices:\n  local: { endpoints: [ { address: 127.0.0.1:9 } ] }", "f.yaml");
        var services = new[] { FakeKubeApiServer.Service("default", "web", "10.96.0.10", ("http", 80, 8080, "TCP"), ("dns", 53, 5353, "UDP")) }
            .Select(s => s.Deserialize(KubernetesJson.Default.KubeService)!);
        var slices = new[]
        {
            FakeKubeApiServer.Slice("default", "web", "web-1", "http", 8080, ("10.1.0.1", "node-a", "zone-1", true), ("10.1.0.2", "node-b", "zone-2", false)),
            FakeKubeApiServer.Slice("default", "web", "web-2", "other", 9999, ("10.1.0.3", "node-a", "zone-1", true)),
        }.Select(s => s.Deserialize(KubernetesJson.Default.EndpointSlice)!);
        var state = ClusterStateBuilder.Build(services, slices);

        var web = state.Services.Single(s => s.Name == "default/web:80");
        Assert.Equal(["10.96.0.10"], web.ClusterIps);
        Assert.Equal(
            [new ClusterEndpoint("10.1.0.1:8080", "node-a", "zone-1", true, true, false), new ClusterEndpoint("10.1.0.2:8080", "node-b", "zone-2", false, false, false)],
            web.Endpoints);
        Assert.Equal("UDP", state.Services.Single(s => s.Name == "default/web:53/udp").Protocol);

        var store = new ClusterStateStore(new ConfigSource(null, file), NullLogger<ClusterStateStore>.Instance);
        Assert.True(store.TrySet(state, out _));
        Assert.False(store.TrySet(ClusterStateBuilder.Build(services, slices), out _));
        var merged = store.Merge(file);

        Assert.Equal("10.1.0.1:8080", Assert.Single(merged.Services["default/web:80"].Endpoints).Address);
        Assert.Equal(ServiceOrigin.Kubernetes, merged.Services["default/web:80"].Origin);
        Assert.False(merged.Services.ContainsKey("default/web:53"));
        var dns = merged.Services["default/web:53/udp"];
        Assert.Null(dns.Vips);
        Assert.Equal([IPEndPoint.Parse("10.96.0.10:53")], dns.UdpVips!);
        Assert.Empty(merged.Services["shop/api:8080"].Endpoints);
        Assert.Equal(ServiceOrigin.File, merged.Services["local"].Origin);
        Assert.Equal(file.Digest, merged.Digest);
    }
}
