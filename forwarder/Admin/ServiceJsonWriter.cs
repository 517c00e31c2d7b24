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
        }

        json.WriteStartArray("endpoints");
        foreach (var endpoint in service.Endpoints)
        {
            json.WriteStartObject();
            json.WriteString("address", endpoint.Address);
            json.WriteNumber("weight", endpoint.Weight);
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
        json.WriteEndObject();
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
