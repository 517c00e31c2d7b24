using Forwarder.Metrics;

namespace Forwarder.Admin;

/// <summary>Renders Kubernetes discovery's state for /metrics, when a cluster section started it.</summary>
internal static class DiscoveryMetricsWriter
{
    public static void Write(MetricsText text, DiscoveryMetrics discovery, DateTimeOffset now)
    {
        if (!discovery.Enabled)
        {
            return;
        }

        Gauge(text, "forwarder_discovery_connected", "1 while the last list or watch call to the Kubernetes API server succeeded.", discovery.Connected);
        var lastSync = discovery.LastSyncTicks;
        Gauge(text, "forwarder_discovery_last_sync_age_seconds", "Seconds since the API server last answered a list or sent a watch event or bookmark; -1 for never.", lastSync == 0 ? -1 : (long)(now - new DateTimeOffset(lastSync, TimeSpan.Zero)).TotalSeconds);
        Counter(text, "forwarder_discovery_relists_total", "Full lists after the first (410 Gone, or an error past the watch).", discovery.Relists);
        Counter(text, "forwarder_discovery_watch_restarts_total", "Watches opened again from the last resourceVersion after the server ended one.", discovery.WatchRestarts);
        Counter(text, "forwarder_discovery_errors_total", "List and watch calls that failed (each retried with backoff; the last known state stays).", discovery.Errors);
        Gauge(text, "forwarder_discovery_services", "Service ports discovered (each a service NAMESPACE/NAME:PORT).", discovery.Services);
        Gauge(text, "forwarder_discovery_endpoints", "Endpoints discovered across those service ports.", discovery.Endpoints);
        Gauge(text, "forwarder_discovery_from_cache", "1 while the state served is the cache file's, not yet confirmed by the API server.", discovery.FromCache);
    }

    private static void Gauge(MetricsText text, string name, string help, long value)
    {
        PrometheusWriter.Family(text, name, "gauge", help);
        PrometheusWriter.Sample(text, name, string.Empty, value);
    }

    private static void Counter(MetricsText text, string name, string help, long value)
    {
        PrometheusWriter.Family(text, name, "counter", help);
        PrometheusWriter.Sample(text, name, string.Empty, value);
    }
}
