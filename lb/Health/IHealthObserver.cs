namespace Forwarder.LoadBalancing.Health;

/// <summary>Hears every health transition of a service's endpoints, to log them.</summary>
public interface IHealthObserver
{
    void CheckStateChanged(EndpointHealth endpoint, HealthCheckState state);

    void Ejected(EndpointHealth endpoint, TimeSpan duration);

    void Returned(EndpointHealth endpoint);
}
