using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Interception;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

public sealed class IptablesRulesTests
{
    private const string Config = """
        intercept: {}
        listeners:
          - name: web
            listen: 127.0.0.1:8080
            protocol: http
            vips: ['10.96.0.20:80']
            routes: [{ service: echo }]
        services:
          echo:
            vips: ['10.96.0.10:53', '10.96.0.10:53/udp', '[fd00::10]:80']
            endpoints: [{ address: 127.0.0.1:9000 }]
        """;

    [Fact]
    public async Task PrintCommand_ShowsEachFamilysRules_WithoutApplyingThem()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("fw-iptables-").FullName, "node.yaml");
        await File.WriteAllTextAsync(path, Config);

        var (exitCode, output, errors) = await ForwarderProcess.RunAsync("iptables", "--print", "--config", path);

        Assert.True(exitCode == 0, errors);
        Assert.Equal(
            """
            # iptables-restore --noflush
            # UDP_PORT: the ephemeral port the forwarder binds for each UDP VIP at start; iptables-save on a running node shows it
            *nat
            :FORWARDER-OUTPUT - [0:0]
            :FORWARDER-PREROUTING - [0:0]
            -A FORWARDER-OUTPUT -m mark --mark 0x4657 -j RETURN
            -A FORWARDER-OUTPUT -p tcp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports 15001
            -A FORWARDER-PREROUTING -p tcp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports 15001
            -A FORWARDER-OUTPUT -p tcp -d 10.96.0.20/32 --dport 80 -j REDIRECT --to-ports 15001
            -A FORWARDER-PREROUTING -p tcp -d 10.96.0.20/32 --dport 80 -j REDIRECT --to-ports 15001
            -A FORWARDER-OUTPUT -p udp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports UDP_PORT
            -A FORWARDER-PREROUTING -p udp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports UDP_PORT
            -A OUTPUT -p tcp -j FORWARDER-OUTPUT
            -A PREROUTING -p tcp -j FORWARDER-PREROUTING
            -A OUTPUT -p udp -j FORWARDER-OUTPUT
            -A PREROUTING -p udp -j FORWARDER-PREROUTING
            COMMIT
            # ip6tables-restore --noflush
            *nat
            :FORWARDER-OUTPUT - [0:0]
            :FORWARDER-PREROUTING - [0:0]
            -A FORWARDER-OUTPUT -m mark --mark 0x4657 -j RETURN
            -A FORWARDER-OUTPUT -p tcp -d fd00::10/128 --dport 80 -j REDIRECT --to-ports 15001
            -A FORWARDER-PREROUTING -p tcp -d fd00::10/128 --dport 80 -j REDIRECT --to-ports 15001
            -A OUTPUT -p tcp -j FORWARDER-OUTPUT
            -A PREROUTING -p tcp -j FORWARDER-PREROUTING
            COMMIT

            """,
            output);
    }

    [Fact]
    public async Task PrintCommand_WithoutAnInterceptSection_SaysSo()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("fw-iptables-").FullName, "plain.yaml");
        await File.WriteAllTextAsync(path, "listeners:\n  - { name: e, listen: 127.0.0.1:0, protocol: echo }\n");

        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("iptables", "--print", "--config", path);

        Assert.Equal(2, exitCode);
        Assert.Contains("there is no intercept section", errors, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_Tproxy_MarksLocalTrafficAndTproxiesInPrerouting()
    {
        var config = ConfigLoader.Parse("intercept: { mode: tproxy, capture: ['10.96.0.0/12'] }\n", "t.yaml").Intercept!;

        var rules = IptablesRules.Install(config, "mangle", IptablesRules.Matches(config, [], AddressFamily.InterNetwork), [], ["OUTPUT -p tcp"]);

        Assert.StartsWith("*mangle\n", rules, StringComparison.Ordinal);
        Assert.Contains("-A FORWARDER-OUTPUT -p tcp -d 10.96.0.0/12 -j MARK --set-mark 0x4658\n", rules, StringComparison.Ordinal);
        Assert.Contains("-A FORWARDER-PREROUTING -p tcp -d 10.96.0.0/12 -j TPROXY --on-port 15001 --tproxy-mark 0x4658/0xffffffff\n", rules, StringComparison.Ordinal);
        Assert.DoesNotContain("-A OUTPUT ", rules, StringComparison.Ordinal);
        Assert.Contains("-A PREROUTING -p tcp -j FORWARDER-PREROUTING\n", rules, StringComparison.Ordinal);
    }

    [Fact]
    public void Tables_Tproxy_PutsTcpInMangleAndUdpRedirectsInNat()
    {
        var config = ConfigLoader.Parse("intercept: { mode: tproxy, capture: ['10.96.0.0/12'] }\n", "t.yaml").Intercept!;
        var udp = IptablesRules.UdpRedirects([(IPEndPoint.Parse("10.96.0.10:53"), "40053"), (IPEndPoint.Parse("[fd00::10]:53"), "40054")], AddressFamily.InterNetwork);

        var tables = IptablesRules.Tables(config, IptablesRules.Matches(config, [], AddressFamily.InterNetwork), udp);
        var nat = IptablesRules.Install(config, "nat", tables["nat"].Tcp, tables["nat"].Udp, ["OUTPUT -p udp"]);

        Assert.Equal(["-d 10.96.0.0/12"], tables["mangle"].Tcp);
        Assert.Empty(tables["mangle"].Udp);
        Assert.Equal(["-d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports 40053"], tables["nat"].Udp);
        Assert.Contains("-A FORWARDER-OUTPUT -p udp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports 40053\n", nat, StringComparison.Ordinal);
        Assert.Contains("-A FORWARDER-PREROUTING -p udp -d 10.96.0.10/32 --dport 53 -j REDIRECT --to-ports 40053\n", nat, StringComparison.Ordinal);
        Assert.DoesNotContain("-p tcp", nat, StringComparison.Ordinal);
        Assert.DoesNotContain("-A OUTPUT ", nat, StringComparison.Ordinal);
        Assert.Contains("-A PREROUTING -p udp -j FORWARDER-PREROUTING\n", nat, StringComparison.Ordinal);
    }

    [Fact]
    public void Tables_NothingToCatch_ListsNoTable()
    {
        var config = ConfigLoader.Parse("intercept: {}\n", "t.yaml").Intercept!;

        Assert.Empty(IptablesRules.Tables(config, [], []));
    }

    [Fact]
    public void Remove_TakesOutTheJumpsAndChainsFound_AndLeavesOtherRules()
    {
        const string Saved = """
            *nat
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :FORWARDER-OUTPUT - [0:0]
            :FORWARDER-PREROUTING - [0:0]
            -A OUTPUT -d 10.0.0.1/32 -j RETURN
            -A OUTPUT -p tcp -j FORWARDER-OUTPUT
            -A PREROUTING -p tcp -j FORWARDER-PREROUTING
            -A FORWARDER-OUTPUT -m mark --mark 0x4657 -j RETURN
            COMMIT
            """;

        Assert.Equal(
            "*nat\n-D OUTPUT -p tcp -j FORWARDER-OUTPUT\n-D PREROUTING -p tcp -j FORWARDER-PREROUTING\n-F FORWARDER-OUTPUT\n-X FORWARDER-OUTPUT\n-F FORWARDER-PREROUTING\n-X FORWARDER-PREROUTING\nCOMMIT\n",
            IptablesRules.Remove("nat", Saved));
        Assert.Equal(["OUTPUT -p tcp", "PREROUTING -p tcp"], IptablesRules.ExistingJumps(Saved).Order());
        Assert.Null(IptablesRules.Remove("nat", "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j RETURN\nCOMMIT\n"));
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0, 80, 10, 96, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0 }, "10.96.0.10:80")]
    [InlineData(new byte[] { 10, 0, 0x1f, 0x90, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0 }, "[fd00::10]:8080")]
    [InlineData(new byte[] { 10, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 96, 0, 10, 0, 0, 0, 0 }, "10.96.0.10:80")]
    public void OriginalDestination_ParsesSockaddr(byte[] sockaddr, string expected)
        => Assert.Equal(IPEndPoint.Parse(expected), OriginalDestinationParse(sockaddr));

    private static IPEndPoint? OriginalDestinationParse(byte[] sockaddr) => OriginalDestination.Parse(sockaddr);
}
