using System.Net;
using Forwarder.Cluster;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Interception;

public sealed class InterceptConfigTests
{
    [Fact]
    public void Parse_InterceptSection_ReadsItAndAddsTheInterceptListener()
    {
        var config = ConfigLoader.Parse("""
            intercept:
              listen: 0.0.0.0:15006
              mode: tproxy
              manageRules: false
              mark: 0x1234
              capture: ['10.96.0.0/12', 'fd00:10:96::/112']
            services:
              web:
                appProtocol: http
                vips: ['10.96.0.10:80', '[fd00:10:96::10]:80']
                endpoints: [{ address: 127.0.0.1:9000 }]
            """, "i.yaml");

        var intercept = Assert.IsType<InterceptConfig>(config.Intercept);
        Assert.Equal(InterceptMode.Tproxy, intercept.Mode);
        Assert.False(intercept.ManageRules);
        Assert.Equal(0x1234, intercept.Mark);
        Assert.Equal([IPNetwork.Parse("10.96.0.0/12"), IPNetwork.Parse("fd00:10:96::/112")], intercept.Capture!);
        var listener = Assert.Single(config.Listeners);
        Assert.Equal((ListenerProtocol.Intercept, 15006, "intercept"), (listener.Protocol, listener.EndPoint.Port, listener.Name));
        Assert.Equal([IPEndPoint.Parse("10.96.0.10:80"), IPEndPoint.Parse("[fd00:10:96::10]:80")], config.Services["web"].Vips!);
        Assert.Equal("http", config.Services["web"].AppProtocol);
    }

    [Fact]
    public void Parse_EmptyInterceptSection_GetsTheDefaults()
    {
        var config = ConfigLoader.Parse("intercept: {}\nservices: {}", "i.yaml");

        var intercept = config.Intercept!;
        Assert.Equal((InterceptMode.Redirect, true, InterceptConfig.DefaultMark, null), (intercept.Mode, intercept.ManageRules, intercept.Mark, intercept.Capture));
        Assert.Equal(InterceptConfig.DefaultListen, intercept.Listener.Listen);
    }

    [Fact]
    public void Parse_UdpVips_GoToTheServicesUdpVips_BesideTheTcpOneOfTheSamePort()
    {
        var config = ConfigLoader.Parse("""
            intercept: {}
            services:
              dns:
                vips: ['198.19.96.53:53/udp', '198.19.96.53:53', '198.19.96.54:53/tcp', '[fd00::53]:53/udp']
                endpoints: [{ address: 127.0.0.1:5353 }]
            """, "i.yaml");

        var dns = config.Services["dns"];
        Assert.Equal([IPEndPoint.Parse("198.19.96.53:53"), IPEndPoint.Parse("198.19.96.54:53")], dns.Vips!);
        Assert.Equal([IPEndPoint.Parse("198.19.96.53:53"), IPEndPoint.Parse("[fd00::53]:53")], dns.UdpVips!);
    }

    [Theory]
    [InlineData("intercept: { mode: nat }\nservices: {}", 1, "intercept.mode", "expected redirect or tproxy")]
    [InlineData("intercept: { listen: '[::]:0' }\nservices: {}", 1, "intercept.listen", "with a fixed port")]
    [InlineData("intercept: { mark: 0 }\nservices: {}", 1, "intercept.mark", "non-zero packet mark")]
    [InlineData("intercept: { capture: [10.96.0.0] }\nservices: {}", 1, "intercept.capture[0]", "expected a CIDR")]
    [InlineData("intercept: {}\nservices:\n  web:\n    vips: [web:80]\n    endpoints: [{ address: 127.0.0.1:9 }]", 4, "services.web.vips[0]", "expected a service IP and port")]
    [InlineData("intercept: {}\nservices:\n  web:\n    vips: ['10.0.0.1:15001']\n    endpoints: [{ address: 127.0.0.1:9 }]", 4, "services.web.vips[0]", "intercept listener's port 15001; connections to it would loop")]
    [InlineData("services:\n  web:\n    vips: ['10.0.0.1:80']\n    endpoints: [{ address: 127.0.0.1:9 }]\nlisteners: []", 3, "services.web.vips[0]", "applies only with an intercept section")]
    [InlineData("intercept: {}\nservices:\n  web:\n    vips: ['10.0.0.1:53/sctp']\n    endpoints: [{ address: 127.0.0.1:9 }]", 4, "services.web.vips[0]", "expected a service IP and port")]
    [InlineData("intercept: {}\nservices:\n  a:\n    vips: ['10.0.0.1:53/udp']\n    endpoints: [{ address: 127.0.0.1:9 }]\n  b:\n    vips: ['10.0.0.1:53/udp']\n    endpoints: [{ address: 127.0.0.1:9 }]", 7, "services.b.vips[0]", "10.0.0.1:53/udp is already a VIP of services.a")]
    [InlineData("intercept: {}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:8080\n    protocol: http\n    vips: ['10.0.0.1:53/udp']\n    routes: [{ service: web }]\nservices:\n  web:\n    endpoints: [{ address: 127.0.0.1:9 }]", 6, "listeners[0].vips[0]", "an http listener serves TCP only")]
    [InlineData("intercept: {}\nservices:\n  web:\n    appProtocol: http2\n    endpoints: [{ address: 127.0.0.1:9 }]", 4, "services.web.appProtocol", "expected tcp, http, h2c or grpc")]
    public void Parse_BadInterceptConfig_NamesFileLineAndField(string yaml, int line, string field, string message)
    {
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "bad.yaml")).Errors);

        Assert.Equal(("bad.yaml", line, field), (error.File, error.Line, error.Field));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_OneVipOnTwoOwners_IsRefusedAtTheSecond()
    {
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            intercept: {}
            listeners:
              - name: web
                listen: 127.0.0.1:8080
                protocol: http
                vips: ['10.96.0.10:80']
                routes: [{ service: a }]
            services:
              a:
                vips: ['10.96.0.10:80']
                endpoints: [{ address: 127.0.0.1:9 }]
            """, "dup.yaml")).Errors);

        Assert.Equal((6, "listeners[0].vips[0]"), (error.Line, error.Field));
        Assert.Contains("10.96.0.10:80 is already a VIP of services.a", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_VipsOnATcpListener_AreRefused()
    {
        var errors = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            intercept: {}
            listeners:
              - { name: raw, listen: 127.0.0.1:8081, protocol: tcp, service: a, vips: ['10.96.0.11:80'] }
            services:
              a: { endpoints: [{ address: 127.0.0.1:9 }] }
            """, "tcp.yaml")).Errors;

        var error = Assert.Single(errors);
        Assert.Equal((3, "listeners[0].vips"), (error.Line, error.Field));
        Assert.Contains("applies to http listeners only", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_AListenerNamedIntercept_ClashesWithTheInterceptListener()
    {
        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            intercept: { listen: '0.0.0.0:15001' }
            listeners:
              - { name: other, listen: '127.0.0.1:15001', protocol: echo }
            """, "clash.yaml")).Errors);

        Assert.Equal((1, "intercept.listen"), (error.Line, error.Field));
        Assert.Contains("listener 'other' already uses port 15001", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merge_DiscoveredServices_CarryTheirClusterIpsAsVips_AndAreAllBuiltWhenIntercepting()
    {
        var file = ConfigLoader.Parse("cluster:\n  kubernetes: {}\nintercept: {}\n", "node.yaml");
        var store = new ClusterStateStore(new ConfigSource(null, file), NullLogger<ClusterStateStore>.Instance);
        var web = new ClusterService("default/web:80", "default", "web", ["10.96.0.10", "fd00:10:96::10", "None"], 80, "TCP", "http", [new ClusterEndpoint("10.1.0.1:8080", null, null, true, true, false)]);
        Assert.True(store.TrySet(new ClusterState([web]), out _));

        var merged = store.Merge(file);

        var service = merged.Services["default/web:80"];
        Assert.Equal([IPEndPoint.Parse("10.96.0.10:80"), IPEndPoint.Parse("[fd00:10:96::10]:80")], service.Vips!);
        Assert.Equal("http", service.AppProtocol);
        Assert.Contains("default/web:80", ServiceReferences.Used(merged));
    }
}
