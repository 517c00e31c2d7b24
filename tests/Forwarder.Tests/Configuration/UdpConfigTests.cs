using Forwarder.Configuration;

namespace Forwarder.Tests.Configuration;

public sealed class UdpConfigTests
{
    private const string Services = """
        services:
          dns:
            endpoints:
              - address: 127.0.0.1:5353
        """;

    [Fact]
    public void Parse_UdpListener_ReadsSessionSettings()
    {
        var config = ConfigLoader.Parse("""
            listeners:
              - name: dns
                listen: 127.0.0.1:53
                protocol: udp
                service: dns
                udp: { idleTimeout: 5s, maxSessions: 200 }
            """ + "\n" + Services, "udp.yaml");

        var listener = Assert.Single(config.Listeners);
        Assert.Equal(ListenerProtocol.Udp, listener.Protocol);
        Assert.Equal(new UdpListenerConfig(TimeSpan.FromSeconds(5), 200), listener.Udp);
    }

    [Fact]
    public void Parse_UdpListenerWithoutSection_GetsDefaults()
    {
        var config = ConfigLoader.Parse("listeners:\n  - { name: dns, listen: '127.0.0.1:53', protocol: udp, service: dns }\n" + Services, "udp.yaml");

        Assert.Equal(new UdpListenerConfig(UdpListenerReader.DefaultIdleTimeout, UdpListenerReader.DefaultMaxSessions), config.Listeners[0].Udp);
    }

    [Fact]
    public void Parse_TcpAndUdpOnOneAddress_AreTwoListeners()
    {
        var config = ConfigLoader.Parse("""
            listeners:
              - { name: dns-udp, listen: '127.0.0.1:53', protocol: udp, service: dns }
              - { name: dns-tcp, listen: '127.0.0.1:53', protocol: tcp, service: dns }
            """ + "\n" + Services, "udp.yaml");

        Assert.NotEqual(config.Listeners[0].BindingKey, config.Listeners[1].BindingKey);
    }

    [Theory]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp }", "bad.yaml:2:5: listeners[0].service", "is required for a udp listener")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp, service: nope }", "bad.yaml:2:64: listeners[0].service", "no service named 'nope'")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp, service: dns, udp: { idleTimeout: soon } }", "bad.yaml:2:89: listeners[0].udp.idleTimeout", "")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp, service: dns, udp: { maxSessions: 0 } }", "bad.yaml:2:89: listeners[0].udp.maxSessions", "")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp, service: dns, udp: { ttl: 5 } }", "bad.yaml:2:76: listeners[0].udp.ttl", "")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: tcp, service: dns, udp: { maxSessions: 5 } }", "bad.yaml:2:74: listeners[0].udp", "applies to udp listeners only")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: udp, service: dns, maxConnections: 5 }", "bad.yaml:2:85: listeners[0].maxConnections", "use udp.maxSessions")]
    [InlineData("{ name: a, listen: '127.0.0.1:53', protocol: quic, service: dns }", "bad.yaml:2:50: listeners[0].protocol", "expected tcp, udp, http or echo")]
    public void Parse_BadUdpListener_NamesTheField(string listener, string location, string message)
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse($"listeners:\n  - {listener}\n{Services}", "bad.yaml"));

        var first = Assert.Single(error.Errors).ToString();
        Assert.StartsWith(location, first, StringComparison.Ordinal);
        Assert.Contains(message, first, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TwoUdpListenersOnOneAddress_AreRefused()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            listeners:
              - { name: a, listen: '127.0.0.1:53', protocol: udp, service: dns }
              - { name: b, listen: '127.0.0.1:53', protocol: udp, service: dns }
            """ + "\n" + Services, "bad.yaml"));

        Assert.Contains("listeners[1].listen: another listener already listens on 127.0.0.1:53", Assert.Single(error.Errors).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UdpServiceWithEndpointOnAnotherNode_IsRefused()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            node:
              name: edge-1
              listen: 127.0.0.1:7443
              certificate: edge-1.pem
              key: edge-1.key
              ca: ca.pem
              peers: [ { name: edge-2, address: 127.0.0.2:7443 } ]
            listeners:
              - { name: a, listen: '127.0.0.1:53', protocol: udp, service: dns }
            services:
              dns:
                endpoints: [ { address: 127.0.0.1:5353, node: edge-2 } ]
            """, "bad.yaml"));

        Assert.Contains("listeners[0].service: service 'dns' has endpoint 127.0.0.1:5353 on node 'edge-2'; udp is forwarded to endpoints on this node only", string.Join("\n", error.Errors), StringComparison.Ordinal);
    }
}
