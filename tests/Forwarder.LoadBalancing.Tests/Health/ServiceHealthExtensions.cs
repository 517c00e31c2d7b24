using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

internal static class ServiceHealthExtensions
{
    /// <summary>Resolves and commits in one step, as applying a config does.</summary>
    public static EndpointHealth[] Configure(this ServiceHealth health, string[] ids, OutlierDetectionOptions? outlier)
    {
        var states = health.Resolve(ids);
        health.Configure(states, outlier);
        return states;
    }
}
