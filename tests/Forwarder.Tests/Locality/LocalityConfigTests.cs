using Forwarder.Configuration;

namespace Forwarder.Tests.Locality;

public sealed class LocalityConfigTests
{
    private const string ConfigFile = "/etc/forwarder/forwarder.yaml";

    private static string Yaml(string locality, string lb = "", string endpoints = """
              - { address: '198.18.10.2:80', node: a1, zone: zone-a }
              - { address: '198.18.11.2:80', node: a2, zone: zone-a }
              - { address: '198.18.12.2:80', node: b1, zone: zone-b }
        """) => $"""
        {locality}
        listeners:
          - {"{"} name: web, listen: 127.0.0.1:0, protocol: tcp, service: web {"}"}
        services:
          web:
        {lb}
            endpoints:
        {endpoints}
        """;

    private static string[] Errors(string yaml)
        => [.. Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, ConfigFile)).Errors.Select(e => e.ToString())];

    [Fact]
    public void Parse_LocalitySection_PlacesEndpointsOnLevels()
    {
        var config = ConfigLoader.Parse(Yaml("locality: { node: a1, zone: zone-a }"), ConfigFile);

        var service = config.Services["web"];
        var locality = Assert.IsType<ServiceLocality>(service.Lb.Locality);
        Assert.Equal(("a1", "zone-a", 140), (locality.Node, locality.Zone, locality.OverprovisioningFactor));
        Assert.Equal([0, 1, 2], service.Endpoints.Select(locality.LevelOf));
        Assert.Equal(["node", "zone", "other"], Enumerable.Range(0, 3).Select(locality.LevelName));

        // Without a node (mesh) section the endpoint's node is a label: it is dialled directly.
        Assert.All(service.Endpoints, e => Assert.IsType<System.Net.IPEndPoint>(e.EndPoint));
        Assert.Equal(["a1", "a2", "b1"], service.Endpoints.Select(e => e.Node));
        Assert.Equal(["zone-a", "zone-a", "zone-b"], service.Endpoints.Select(e => e.Zone));
    }

    [Fact]
    public void Parse_ServiceOverride_ReplacesTheDefaults()
    {
        var config = ConfigLoader.Parse(Yaml("locality: { node: a1, zone: zone-a, overprovisioningFactor: 120 }", """
                lb: { policy: maglev, locality: { overprovisioningFactor: 200, levels: [zone] } }
            """), ConfigFile);

        var locality = config.Services["web"].Lb.Locality!;
        Assert.Equal(200, locality.OverprovisioningFactor);
        Assert.Equal([LocalityScope.Zone], locality.Levels);
        Assert.Equal([0, 0, 1], config.Services["web"].Endpoints.Select(locality.LevelOf));
    }

    [Fact]
    public void Parse_ServiceTurnsItOff_OrSectionDisablesTheDefault()
    {
        var off = ConfigLoader.Parse(Yaml("locality: { node: a1 }", "    lb: { locality: { enabled: false } }"), ConfigFile);
        var optIn = ConfigLoader.Parse(Yaml("locality: { node: a1, enabled: false }", "    lb: { locality: {} }"), ConfigFile);
        var byDefault = ConfigLoader.Parse(Yaml("locality: { node: a1, enabled: false }"), ConfigFile);

        Assert.Null(off.Services["web"].Lb.Locality);
        Assert.Equal("a1", optIn.Services["web"].Lb.Locality?.Node);
        Assert.Null(byDefault.Services["web"].Lb.Locality);
    }

    [Fact]
    public void Parse_NoLocalitySection_LocalityOffAndNodeLabelsNeedAMesh()
    {
        var config = ConfigLoader.Parse(Yaml(string.Empty, endpoints: "      - { address: '198.18.10.2:80', zone: zone-a }"), ConfigFile);

        Assert.Null(config.Services["web"].Lb.Locality);
        Assert.Contains(Errors(Yaml(string.Empty)), e => e.Contains("endpoints[0].node: no node named 'a1' (there is no node section)", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_BadValues_NameFileLineAndField()
    {
        var errors = Errors(Yaml("locality: { node: 'a 1', zone: zone-a, overprovisioningFactor: 50 }", "    lb: { locality: { levels: [node, rack, node] } }"));

        Assert.Contains(errors, e => e.StartsWith($"{ConfigFile}:1:", StringComparison.Ordinal) && e.Contains("locality.node: 'a 1' is not a node name", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("locality.overprovisioningFactor", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("services.web.lb.locality.levels[1]: expected node or zone", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("services.web.lb.locality.levels[2]: node is listed twice", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_EnabledWithoutAPlace_EveryEndpointOnTheLastLevel()
    {
        Assert.Null(Environment.GetEnvironmentVariable(LocalityConfig.NodeVariable));
        var config = ConfigLoader.Parse(Yaml("locality: {}", endpoints: "      - { address: '198.18.10.2:80', node: a1, zone: zone-a }"), ConfigFile);

        var locality = config.Services["web"].Lb.Locality!;
        Assert.Equal(2, locality.LevelOf(config.Services["web"].Endpoints[0]));
    }
}
