using System.Text.Json;
using Forwarder.Configuration;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.LoadBalancing.Health;
using Forwarder.Runtime;

namespace Forwarder.Admin;

/// <summary>Renders one service for /config: its settings as configured and each endpoint's live load and health.</summary>
internal static class ServiceJsonWriter
{
    public static void Write(Utf8JsonWriter json, ServiceConfig service, ServiceModel? model)
    {
        json.WriteStartObject();
        json.WriteString("origin", service.Origin == ServiceOrigin.Kubernetes ? "kubernetes" : "file");
        WriteLb(json, service.Lb);
        if (service.HealthCheck is { } check)
        {
            json.WriteStartObject("healthCheck");
            json.WriteString("type", check.Kind.ToString().ToLowerInvariant());
            if (check.Kind == HealthCheckKind.Http)
            {
                json.WriteString("path", check.Path);
                if (check.Host is not null)
                {
                    json.WriteString("host", check.Host);
                }
            }

            json.WriteString("interval", ValueParsers.FormatDuration(check.Interval));
            json.WriteString("timeout", ValueParsers.FormatDuration(check.Timeout));
            json.WriteNumber("healthyThreshold", check.HealthyThreshold);
            json.WriteNumber("unhealthyThreshold", check.UnhealthyThreshold);
            json.WriteString("jitter", ValueParsers.FormatDuration(check.Jitter));
            json.WriteEndObject();
        }

        if (service.OutlierDetection is { } outlier)
        {
            json.WriteStartObject("outlierDetection");
            json.WriteNumber("consecutiveFailures", outlier.ConsecutiveFailures);
            json.WriteString("baseEjectionTime", ValueParsers.FormatDuration(outlier.BaseEjectionTime));
            json.WriteString("maxEjectionTime", ValueParsers.FormatDuration(outlier.MaxEjectionTime));
            json.WriteNumber("maxEjectionPercent", outlier.MaxEjectionPercent);
            json.WriteEndObject();
        }

        json.WriteString("connectTimeout", ValueParsers.FormatDuration(service.ConnectTimeout));
        json.WriteNumber("connectAttempts", service.ConnectAttempts);
        json.WriteString("idleTimeout", ValueParsers.FormatDuration(service.IdleTimeout));
        if (model is not null)
        {
            json.WriteNumber("availableEndpoints", model.Balancer.AvailableCount);
            json.WriteBoolean("panic", model.Balancer.Panic);
            WriteLocalityPicks(json, service.Lb.Locality, model);
        }

        json.WriteStartArray("endpoints");
        foreach (var endpoint in service.Endpoints)
        {
            json.WriteStartObject();
            json.WriteString("address", endpoint.Address);
            json.WriteNumber("weight", endpoint.Weight);
            WriteTopology(json, endpoint, service.Lb.Locality);
            if (model?.Endpoints.FirstOrDefault(e => e.Config.Address == endpoint.Address) is { } live)
            {
                WriteLiveState(json, live, service.HealthCheck is not null);
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteLb(Utf8JsonWriter json, LbConfig lb)
    {
        json.WriteStartObject("lb");
        json.WriteString("policy", lb.Policy);
        if (LoadBalancingPolicies.IsHashPolicy(lb.Policy))
        {
            json.WriteStartArray("hash");
            foreach (var key in lb.HashKeys)
            {
                WriteHashKey(json, key);
            }

            json.WriteEndArray();
            json.WriteNumber("minRingSize", lb.Hashing.MinRingSize);
            json.WriteNumber("maxRingSize", lb.Hashing.MaxRingSize);
            json.WriteNumber("tableSize", lb.Hashing.TableSize);
            json.WriteNumber("hashBalanceFactor", lb.Hashing.BalanceFactor);
        }

        json.WriteNumber("panicThreshold", lb.PanicThreshold);
        if (lb.Locality is { } locality)
        {
            json.WriteStartObject("locality");
            WriteIfSet(json, "node", locality.Node);
            WriteIfSet(json, "zone", locality.Zone);
            json.WriteStartArray("levels");
            for (var level = 0; level <= locality.Levels.Count; level++)
            {
                json.WriteStringValue(locality.LevelName(level));
            }

            json.WriteEndArray();
            json.WriteNumber("overprovisioningFactor", locality.OverprovisioningFactor);
            json.WriteEndObject();
        }

        json.WriteEndObject();
    }

    private static void WriteTopology(Utf8JsonWriter json, EndpointConfig endpoint, ServiceLocality? locality)
    {
        if (locality is not null)
        {
            WriteIfSet(json, "node", endpoint.Node);
            WriteIfSet(json, "zone", endpoint.Zone);
            json.WriteString("level", locality.LevelName(locality.LevelOf(endpoint)));
        }
    }

    /// <summary>How many picks each level got so far: whether traffic stays local.</summary>
    private static void WriteLocalityPicks(Utf8JsonWriter json, ServiceLocality? locality, ServiceModel model)
    {
        if (locality is null)
        {
            return;
        }

        json.WriteStartObject("localityPicks");
        for (var level = 0; level <= locality.Levels.Count; level++)
        {
            json.WriteNumber(locality.LevelName(level), model.Metrics.LocalityPicks[level]);
        }

        json.WriteEndObject();
    }

    private static void WriteIfSet(Utf8JsonWriter json, string name, string? value)
    {
        if (value is not null)
        {
            json.WriteString(name, value);
        }
    }

    private static void WriteHashKey(Utf8JsonWriter json, HashKey key)
    {
        var source = JsonNamingPolicy.CamelCase.ConvertName(key.Source.ToString());
        if (key.Name is null)
        {
            json.WriteStringValue(source);
            return;
        }

        json.WriteStartObject();
        if (key.Affinity is { } affinity)
        {
            json.WriteStartObject(source);
            json.WriteString("name", key.Name);
            json.WriteBoolean("generate", true);
            if (affinity.Ttl is { } ttl)
            {
                json.WriteString("ttl", ValueParsers.FormatDuration(ttl));
            }

            json.WriteString("path", affinity.Path);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString(source, key.Name);
        }

        json.WriteEndObject();
    }

    private static void WriteLiveState(Utf8JsonWriter json, UpstreamEndpoint endpoint, bool activeChecks)
    {
        var health = endpoint.Health;
        json.WriteNumber("inFlight", endpoint.State.InFlight);
        json.WriteBoolean("healthy", health.IsAvailable(activeChecks));
        if (activeChecks)
        {
            json.WriteString("check", health.Check.ToString().ToLowerInvariant());
            if (health.LastCheckFailure is { } failure)
            {
                json.WriteString("lastCheckFailure", failure);
            }
        }

        json.WriteBoolean("ejected", health.Ejected);
        if (health.EjectedUntil is { } until)
        {
            json.WriteString("ejectedUntil", until);
        }

        json.WriteNumber("ejections", health.Ejections);
        json.WriteNumber("consecutiveFailures", health.ConsecutiveFailures);
    }
}
