namespace Forwarder.LoadBalancing.Health;

/// <summary>
/// The health of one service's endpoints, kept across reloads. Active checks and passive
/// failure reports come in here; every transition that changes which endpoints are available
/// tells the subscribed balancer, which rebuilds off the hot path.
/// </summary>
public sealed class ServiceHealth(TimeProvider time, IHealthObserver? observer = null) : IDisposable
{
    private readonly Lock _lock = new();
    private EndpointHealth[] _endpoints = [];
    private OutlierDetectionOptions? _outlier;
    private Action? _changed;

    /// <summary>The endpoints of the config last applied, in its order.</summary>
    public IReadOnlyList<EndpointHealth> Endpoints => Volatile.Read(ref _endpoints);

    public OutlierDetectionOptions? OutlierDetection => Volatile.Read(ref _outlier);

    /// <summary>
    /// The states for a config's endpoints, changing nothing yet: endpoints already known keep
    /// their state, new ones start unchecked and not ejected.
    /// </summary>
    public EndpointHealth[] Resolve(IReadOnlyList<string> ids)
    {
        var current = Volatile.Read(ref _endpoints).ToDictionary(e => e.Id, StringComparer.Ordinal);
        return [.. ids.Select(id => current.GetValueOrDefault(id) ?? new EndpointHealth(id))];
    }

    /// <summary>Commits the endpoint states (from <see cref="Resolve"/>) and options of a config being applied.</summary>
    public void Configure(IReadOnlyList<EndpointHealth> endpoints, OutlierDetectionOptions? outlier)
    {
        List<EndpointHealth> returned = [];
        lock (_lock)
        {
            EndpointHealth[] next = [.. endpoints];
            foreach (var removed in _endpoints.Except(next))
            {
                StopEjection(removed);
            }

            if (outlier is null)
            {
                // Passive detection switched off: nobody is left out on its account.
                foreach (var endpoint in next.Where(e => e.Ejected))
                {
                    StopEjection(endpoint);
                    returned.Add(endpoint);
                }
            }

            Volatile.Write(ref _endpoints, next);
            Volatile.Write(ref _outlier, outlier);
        }

        foreach (var endpoint in returned)
        {
            observer?.Returned(endpoint);
        }
    }

    /// <summary>Makes <paramref name="changed"/> the one callback told of availability changes, and calls it once.</summary>
    public void Subscribe(Action changed)
    {
        Volatile.Write(ref _changed, changed);
        changed();
    }

    /// <summary>Real traffic reached the endpoint: its run of failures ends.</summary>
    public static void ReportSuccess(EndpointHealth endpoint) => endpoint.ClearFailures();

    /// <summary>
    /// Real traffic failed on the endpoint (connect error, or a 5xx for HTTP). Enough in a row
    /// eject it, unless the maximum share of endpoints is already ejected.
    /// </summary>
    public void ReportFailure(EndpointHealth endpoint)
    {
        var outlier = Volatile.Read(ref _outlier);
        if (outlier is null || endpoint.CountFailure() < outlier.ConsecutiveFailures)
        {
            return;
        }

        TimeSpan duration;
        lock (_lock)
        {
            if (endpoint.Ejected || Array.IndexOf(_endpoints, endpoint) < 0
                || _endpoints.Count(e => e.Ejected) >= outlier.MaxEjected(_endpoints.Length))
            {
                return;
            }

            var now = time.GetUtcNow();
            if (now - endpoint.ReturnedAt > outlier.MaxEjectionTime)
            {
                // A long healthy spell since the last ejection: start again from the base time.
                endpoint.EjectionMultiplier = 0;
            }

            endpoint.EjectionMultiplier++;
            duration = outlier.EjectionTime(endpoint.EjectionMultiplier);
            endpoint.ClearFailures();
            endpoint.Eject(now + duration);
            endpoint.ReturnTimer = time.CreateTimer(static state => ((ReturnTicket)state!).Fire(), new ReturnTicket(this, endpoint), duration, Timeout.InfiniteTimeSpan);
        }

        observer?.Ejected(endpoint, duration);
        Changed();
    }

    /// <summary>Records an active check's result; thresholds decide whether the endpoint's state flips.</summary>
    public void ReportCheck(EndpointHealth endpoint, HealthCheckOptions options, bool passed, string? failure)
    {
        HealthCheckState state;
        lock (_lock)
        {
            endpoint.CountCheck(passed);
            endpoint.LastCheckFailure = passed ? null : failure;
            endpoint.CheckStreak = passed ? Math.Max(endpoint.CheckStreak, 0) + 1 : Math.Min(endpoint.CheckStreak, 0) - 1;
            state = endpoint.Check switch
            {
                // The first result decides at once: a new endpoint neither waits nor gets trusted blindly.
                HealthCheckState.Unknown => passed ? HealthCheckState.Healthy : HealthCheckState.Unhealthy,
                HealthCheckState.Healthy when -endpoint.CheckStreak >= options.UnhealthyThreshold => HealthCheckState.Unhealthy,
                HealthCheckState.Unhealthy when endpoint.CheckStreak >= options.HealthyThreshold => HealthCheckState.Healthy,
                var unchanged => unchanged,
            };
            if (state == endpoint.Check)
            {
                return;
            }

            endpoint.Check = state;
        }

        observer?.CheckStateChanged(endpoint, state);
        Changed();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var endpoint in _endpoints)
            {
                endpoint.ReturnTimer?.Dispose();
                endpoint.ReturnTimer = null;
            }

            Volatile.Write(ref _changed, null);
        }
    }

    private void Return(EndpointHealth endpoint)
    {
        lock (_lock)
        {
            if (!endpoint.Ejected || Array.IndexOf(_endpoints, endpoint) < 0)
            {
                return;
            }

            StopEjection(endpoint);
        }

        observer?.Returned(endpoint);
        Changed();
    }

    private void StopEjection(EndpointHealth endpoint)
    {
        endpoint.ReturnTimer?.Dispose();
        endpoint.ReturnTimer = null;
        if (endpoint.Ejected)
        {
            endpoint.Return();
            endpoint.ReturnedAt = time.GetUtcNow();
        }
    }

    private void Changed() => Volatile.Read(ref _changed)?.Invoke();

    /// <summary>What an ejection timer carries, so the timer holds no closure.</summary>
    private sealed class ReturnTicket(ServiceHealth owner, EndpointHealth endpoint)
    {
        public void Fire() => owner.Return(endpoint);
    }
}
