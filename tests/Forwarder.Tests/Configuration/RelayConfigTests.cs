using Forwarder.Configuration;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Configuration;

/// <summary>A relay's config file (<c>forwarder relay --config</c>): what is read, and each mistake at its file, line and field.</summary>
public sealed class RelayConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-relayconfig-").FullName;

    public RelayConfigTests()
    {
        using var authority = MeshAuthority.OpenOrCreate(_directory, TimeSpan.FromDays(1), out _);
        authority.IssueRelay("relay-1", _directory, TimeSpan.FromDays(1)).Dispose();
        authority.IssueNode("edge-1", _directory, TimeSpan.FromDays(1)).Dispose();
    }

    private string ConfigFile => Path.Combine(_directory, "relay.yaml");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void ARelay_WithLimitsAndAdmin()
    {
        var config = Load(Relay(("limits", "{ streamsPerNode: 50, bandwidthPerNode: 10MiB }")) + "\nadmin:\n  listen: 127.0.0.1:9902");

        Assert.Equal("relay-1", config.Name);
        Assert.Equal(7700, config.ListenEndPoint.Port);
        Assert.Equal(Path.Combine(_directory, "relay-1.pem"), config.Identity.Certificate);
        Assert.Equal(Path.Combine(_directory, "ca.pem"), config.Authority);
        Assert.Equal(new RelayLimits(50, 10 * 1024 * 1024), config.Limits);
        Assert.Equal(9902, config.Admin!.EndPoint.Port);
    }

    [Fact]
    public void WithoutLimits_NodesGetTheDefaultStreamsAndNoBandwidthCap()
    {
        var config = Load(Relay());
        Assert.Equal(new RelayLimits(RelayLimits.DefaultStreamsPerNode, null), config.Limits);
        Assert.Null(config.Admin);
    }

    [Theory]
    [InlineData("listen", "nowhere", "relay.listen", "expected IP:PORT")]
    [InlineData("name", "relay-9", "relay.certificate", "is not for relay 'relay-9'")]
    [InlineData("name", "'bad name'", "relay.name", "letters, digits")]
    [InlineData("ca", "missing.pem", "relay.ca", "missing.pem")]
    [InlineData("key", "missing.key", "relay.certificate", "cannot load")]
    [InlineData("limits", "{ streamsPerNode: 0 }", "relay.limits.streamsPerNode", "from 1 to")]
    [InlineData("limits", "{ bandwidthPerNode: 1KB }", "relay.limits.bandwidthPerNode", "at least 64KiB")]
    [InlineData("limits", "{ burst: 5 }", "relay.limits.burst", "unknown")]
    [InlineData("port", "7700", "relay.port", "unknown")]
    [InlineData("mode", "proxy", "relay.mode", "expected splice or terminate, got 'proxy'")]
    [InlineData("splicePort", "7700", "relay.splicePort", "is the listen port 7700")]
    [InlineData("splicePort", "70000", "relay.splicePort", "from 0 to 65535")]
    [InlineData("ticketLifetime", "10ms", "relay.ticketLifetime", "at least 100ms")]
    [InlineData("spliceIdleTimeout", "20s", "relay.spliceIdleTimeout", "is 20s: it must be at least 30s, twice the nodes' keep-alive interval (node.keepAlive, 15s by default)")]
    public void Mistakes_AreNamedAtTheirField(string key, string value, string field, string message)
    {
        var errors = Assert.Throws<ConfigException>(() => Load(Relay((key, value)))).Errors.Select(e => e.ToString());
        var error = Assert.Single(errors, e => e.Contains($": {field}: ", StringComparison.Ordinal));
        Assert.StartsWith(ConfigFile + ":", error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Splicing_IsTheDefault_OnThePortAfterTheListenPort_AndCanBeTurnedOff()
    {
        Assert.Equal(new RelaySpliceConfig(RelayMode.Splice, 7701, RelaySpliceConfig.DefaultTicketLifetime, RelaySpliceConfig.DefaultIdleTimeout, RelaySpliceConfig.DefaultHalfCloseTimeout), Load(Relay()).Splice);
        Assert.Equal(0, Load(Relay(("listen", "0.0.0.0:0"))).Splice.Port);
        Assert.Equal(new RelaySpliceConfig(RelayMode.Terminate, 7800, TimeSpan.FromSeconds(3), TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(5)), Load(Relay(("mode", "terminate"), ("splicePort", "7800"), ("ticketLifetime", "3s"), ("spliceIdleTimeout", "2m"), ("spliceHalfCloseTimeout", "5s"))).Splice);
    }

    [Fact]
    public void ANodeCertificate_CannotServeARelay()
    {
        var errors = Assert.Throws<ConfigException>(() => Load(Relay(("name", "edge-1"), ("certificate", "edge-1.pem"), ("key", "edge-1.key")))).Errors;
        Assert.Contains("relay.certificate: " + Path.Combine(_directory, "edge-1.pem") + " is not for relay 'edge-1': it is for forwarder://node/edge-1, not forwarder://relay/edge-1", Assert.Single(errors).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AFileWithoutTheRelaySection_SaysWhatBelongsThere()
    {
        var error = Assert.Single(Assert.Throws<ConfigException>(() => Load("admin:\n  listen: 127.0.0.1:9902")).Errors).ToString();
        Assert.Contains("relay: is required", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheCli_ChecksARelayConfig()
    {
        File.WriteAllText(ConfigFile, Relay());
        var (ok, output, _) = await ForwarderProcess.RunAsync("relay", "--config", ConfigFile, "--check");
        Assert.Equal(0, ok);
        Assert.Contains("OK (relay relay-1)", output, StringComparison.Ordinal);

        File.WriteAllText(ConfigFile, Relay(("listen", "nowhere")));
        var (invalid, _, errors) = await ForwarderProcess.RunAsync("relay", "--config", ConfigFile, "--check");
        Assert.Equal(2, invalid);
        Assert.Contains("relay.listen", errors, StringComparison.Ordinal);
    }

    private RelayConfig Load(string yaml)
    {
        File.WriteAllText(ConfigFile, yaml);
        return RelayConfigReader.LoadFile(ConfigFile);
    }

    /// <summary>A valid relay section, with <paramref name="overrides"/> replacing or adding fields.</summary>
    private static string Relay(params (string Key, string Value)[] overrides)
    {
        var fields = new Dictionary<string, string>
        {
            ["name"] = "relay-1",
            ["listen"] = "0.0.0.0:7700",
            ["certificate"] = "relay-1.pem",
            ["key"] = "relay-1.key",
            ["ca"] = "ca.pem",
        };
        foreach (var (key, value) in overrides)
        {
            fields[key] = value;
        }

        return "relay:\n" + string.Join("\n", fields.Select(f => $"  {f.Key}: {f.Value}"));
    }
}
