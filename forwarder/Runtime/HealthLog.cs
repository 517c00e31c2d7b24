using Forwarder.LoadBalancing.Health;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>Logs a service's endpoint health transitions.</summary>
internal sealed partial class HealthLog(string service, ILogger logger) : IHealthObserver
{
    public void CheckStateChanged(EndpointHealth endpoint, HealthCheckState state)
    {
        if (state == HealthCheckState.Healthy)
        {
            LogHealthy(logger, service, endpoint.Id);
        }
        else
        {
            LogUnhealthy(logger, service, endpoint.Id, endpoint.LastCheckFailure ?? "unknown");
        }
    }

    public void Ejected(EndpointHealth endpoint, TimeSpan duration) => LogEjected(logger, service, endpoint.Id, duration, endpoint.Ejections);

    public void Returned(EndpointHealth endpoint) => LogReturned(logger, service, endpoint.Id);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Service {Service}: endpoint {Endpoint} passes its health checks")]
    private static partial void LogHealthy(ILogger logger, string service, string endpoint);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Service {Service}: endpoint {Endpoint} fails its health checks ({Failure}); it takes no traffic")]
    private static partial void LogUnhealthy(ILogger logger, string service, string endpoint, string failure);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Service {Service}: endpoint {Endpoint} ejected for {Duration} after consecutive failures (ejection {Ejections})")]
    private static partial void LogEjected(ILogger logger, string service, string endpoint, TimeSpan duration, long ejections);

    [LoggerMessage(EventId = 404, Level = LogLevel.Information, Message = "Service {Service}: endpoint {Endpoint} returns from ejection")]
    private static partial void LogReturned(ILogger logger, string service, string endpoint);
}
