using Forwarder.Bench.Cli;
using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

/// <summary><c>bench gate</c>'s command line, parsed only: nothing is measured.</summary>
public sealed class GateCliTests
{
    [Fact]
    public void PolicyOf_NoAllowanceGiven_IsTheCalibratedOne()
    {
        Assert.Same(GatePolicy.Default, GateCli.PolicyOf(GateCli.Create().Parse([])));
    }

    [Fact]
    public void PolicyOf_OneAllowanceGiven_SetsItForEveryArm_AndKeepsTheArmsOwnOthers()
    {
        var policy = GateCli.PolicyOf(GateCli.Create().Parse(["--alpha", "0.01"]));

        Assert.Equal(0.01, policy.Alpha);
        Assert.Equal(0.01, policy.For("forwarder-link").Alpha);
        Assert.Equal(0.01, policy.For("forwarder-h2").Alpha);
        Assert.Equal(GatePolicy.Default.For("forwarder-link").P99Growth, policy.For("forwarder-link").P99Growth);
        Assert.Equal(GatePolicy.Default.For("forwarder-link").ThroughputGrowth, policy.For("forwarder-link").ThroughputGrowth);
        Assert.Equal(GatePolicy.Default.For("forwarder-h2").P50Growth, policy.For("forwarder-h2").P50Growth);
        Assert.Equal(GatePolicy.Uniform.P50Growth, policy.For("forwarder").P50Growth);
    }

    [Fact]
    public void PolicyOf_AnArmsOwnAllowanceGiven_IsOverriddenForThatArmToo()
    {
        var policy = GateCli.PolicyOf(GateCli.Create().Parse(["--p50-growth", "4%", "--memory-min-growth", "8"]));

        Assert.Equal(0.04, policy.For("forwarder-h2").P50Growth, 1e-12);
        Assert.Equal(0.04, policy.For("forwarder").P50Growth, 1e-12);
        Assert.Equal(8, policy.For("forwarder-link").RssMinimumMiB);
        Assert.Equal(0.60, policy.For("forwarder-link").P99Growth);
    }

    [Fact]
    public void Rules_VaryEveryArmsAllowances()
    {
        var rules = GateCli.Rules(GatePolicy.Default).ToArray();

        Assert.Same(GatePolicy.Default, rules[0]);
        Assert.Contains(rules, rule => rule.P50Growth == 0.075 && rule.For("forwarder-h2").P50Growth == 0.075 && rule.For("forwarder-link").P99Growth == 0.60);
        Assert.Contains(rules, rule => rule.OpenP99MinimumPoints == 1.0 && rule.For("forwarder-link").OpenP99MinimumPoints == 1.0 && rule.For("forwarder-link").ThroughputGrowth == 0.50);
        var looser = Assert.Single(rules, rule => rule.Alpha > GatePolicy.Default.Alpha);
        Assert.Equal(GatePolicy.Default.For("forwarder-h2").Alpha * 5, looser.For("forwarder-h2").Alpha, 1e-12);
    }

    [Fact]
    public void Arms_NamedTwice_IsRefusedWhenParsing()
    {
        var errors = GateCli.Create().Parse(["--arms", "forwarder,forwarder-l7,forwarder"]).Errors;

        Assert.Contains(errors, error => error.Message == "--arms: forwarder is named twice in 'forwarder,forwarder-l7,forwarder'.");
    }

    [Fact]
    public void Arms_WithFrom_IsRefusedWhenParsing()
    {
        Assert.Empty(GateCli.Create().Parse(["--calibrate", "--arms", "forwarder-h2"]).Errors);

        var errors = GateCli.Create().Parse(["--calibrate", "--from", "samples.json", "--arms", "forwarder-h2"]).Errors;

        Assert.Contains(errors, error => error.Message.StartsWith("--arms: not with --from", StringComparison.Ordinal));
    }
}
