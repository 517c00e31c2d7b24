using System.Net;
using Forwarder.Configuration;
using Forwarder.Dns;
using Forwarder.Runtime;

namespace Forwarder.Tests.Dns;

/// <summary>The <c>dns</c> section: defaults, the cluster domain, mistakes located, and the node's resolvers.</summary>
public sealed class DnsConfigTests
{
    [Fact]
    public void Section_Defaults_DomainFromCluster()
    {
        var config = ConfigLoader.Parse("""
            cluster:
              kubernetes: {}
              domain: Edge.Example.
            dns: { listen: 127.0.0.53:53 }
            listeners: []
            """, "f.yaml");

        var dns = config.Dns!;
        Assert.Equal(new IPEndPoint(IPAddress.Parse("127.0.0.53"), 53), dns.EndPoint);
        Assert.Empty(dns.Upstreams);
        Assert.Equal(DnsConfig.DefaultCacheSize, dns.CacheSize);
        Assert.Equal(TimeSpan.FromSeconds(5), dns.Ttl);
        Assert.Equal(TimeSpan.FromSeconds(2), dns.UpstreamTimeout);
        Assert.Equal("edge.example", dns.Domain);

        var fileOnly = ConfigLoader.Parse("dns:\n  listen: '[::1]:5353'\n  upstreams: [192.0.2.1, '[2001:db8::1]:5353', 192.0.2.2:53]\n  cacheSize: 0\n  ttl: 30s\nlisteners: []\n", "f.yaml").Dns!;
        Assert.Equal("cluster.local", fileOnly.Domain);
        Assert.Equal(["192.0.2.1:53", "[2001:db8::1]:5353", "192.0.2.2:53"], fileOnly.Upstreams.Select(u => u.ToString()));
        Assert.Equal(0, fileOnly.CacheSize);
        Assert.Equal(TimeSpan.FromSeconds(30), fileOnly.Ttl);
    }

    [Fact]
    public void Mistakes_NamedByFileLineAndField()
    {
        var yaml = """
            dns:
              listen: localhost:53
              upstreams: [ 192.0.2.1, resolver.example, '192.0.2.9:70000' ]
              cacheSize: -1
              ttl: 2d
              upstreamTimeout: 1ms
              domain: cluster.local
            listeners: []
            """;

        var errors = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "f.yaml")).Errors.Select(e => e.ToString()).ToArray();

        Assert.Contains(errors, e => e.StartsWith("f.yaml:2:", StringComparison.Ordinal) && e.Contains("dns.listen: expected IP:PORT", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:3:", StringComparison.Ordinal) && e.Contains("dns.upstreams[1]: expected a resolver's IP", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:3:", StringComparison.Ordinal) && e.Contains("dns.upstreams[2]", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:4:", StringComparison.Ordinal) && e.Contains("dns.cacheSize: expected a whole number from 0", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:5:", StringComparison.Ordinal) && e.Contains("dns.ttl: expected at most 1d", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:6:", StringComparison.Ordinal) && e.Contains("dns.upstreamTimeout: expected a duration", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("f.yaml:7:", StringComparison.Ordinal) && e.Contains("dns.domain: unknown field", StringComparison.Ordinal));
        Assert.Equal(7, errors.Length);
    }

    [Fact]
    public void ChangedSection_IsARestartOnlyChange()
    {
        var running = ConfigLoader.Parse("dns: { listen: 127.0.0.53:53 }\nlisteners: []\n", "f.yaml");
        var same = ConfigLoader.Parse("dns: { listen: 127.0.0.53:53, upstreams: [] }\nlisteners: []\n", "f.yaml");
        var moved = ConfigLoader.Parse("dns: { listen: 127.0.0.54:53 }\nlisteners: []\n", "f.yaml");

        Assert.Empty(RestartOnlyChanges.Between(running, same));
        Assert.Contains(RestartOnlyChanges.Between(running, moved), w => w.StartsWith("dns changed", StringComparison.Ordinal));
        Assert.Contains(RestartOnlyChanges.Between(running, running with { Dns = null }), w => w.StartsWith("dns changed", StringComparison.Ordinal));
    }

    [Fact]
    public void ResolvConf_Nameservers_WithoutTheServersOwnAddress()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, """
                # generated
                search default.svc.cluster.local svc.cluster.local
                nameserver 127.0.0.53
                nameserver 192.0.2.10
                nameserver	2001:db8::53
                nameserver 192.0.2.10
                nameserver not-an-ip
                options ndots:5
                """);

            var nameservers = ResolvConf.Nameservers(path, new IPEndPoint(IPAddress.Parse("127.0.0.53"), 53));

            Assert.Equal(["192.0.2.10:53", "[2001:db8::53]:53"], nameservers.Select(n => n.ToString()));
            Assert.Empty(ResolvConf.Nameservers(path + ".missing", new IPEndPoint(IPAddress.Loopback, 53)));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
