namespace Forwarder.LoadBalancing.Health;

/// <summary>What an active health check sends to an endpoint.</summary>
public enum HealthCheckKind
{
    /// <summary>A TCP connect that succeeds within the timeout passes.</summary>
    Tcp,

    /// <summary>An HTTP/1.1 GET of a path that answers 2xx within the timeout passes.</summary>
    Http,
}

/// <summary>
/// Active health checking of a service's endpoints, as in HAProxy's <c>check inter rise fall</c>
/// or Envoy's health checkers.
/// </summary>
/// <param name="Interval">Time between the end of one check of an endpoint and the start of the next.</param>
/// <param name="Timeout">A check that has not passed within this time fails.</param>
/// <param name="HealthyThreshold">Consecutive passes that bring an unhealthy endpoint back.</param>
/// <param name="UnhealthyThreshold">Consecutive failures that take a healthy endpoint out.</param>
/// <param name="Jitter">Up to this much is added at random to each interval, so checks of many endpoints (and of many proxies) spread out.</param>
/// <param name="Path">The path an HTTP check requests.</param>
/// <param name="Host">The Host header of an HTTP check; the endpoint's address when null.</param>
public sealed record HealthCheckOptions(
    HealthCheckKind Kind,
    TimeSpan Interval,
    TimeSpan Timeout,
    int HealthyThreshold,
    int UnhealthyThreshold,
    TimeSpan Jitter,
    string Path = "/",
    string? Host = null);
