using Forwarder.Metrics;
using static Forwarder.Admin.PrometheusWriter;

namespace Forwarder.Admin;

/// <summary>Renders the udp listeners' families of the Prometheus exposition (their bytes are in forwarder_listener_bytes_total).</summary>
internal static class UdpMetricsWriter
{
    /// <summary>Writes the families, pausing after each listener like <see cref="PrometheusWriter.Render"/>.</summary>
    public static IEnumerable<int> Render(MetricsText text, ForwarderMetrics metrics)
    {
        var listeners = metrics.UdpListeners.ToArray();
        Family(text, "forwarder_udp_sessions_active", "gauge", "Client addresses a udp listener has a session (and an upstream socket) for.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_udp_sessions_active", $"listener=\"{l.Name}\"", l.Active);
            yield return 0;
        }

        Family(text, "forwarder_udp_sessions_total", "counter", "Udp sessions opened, one per new client address.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_udp_sessions_total", $"listener=\"{l.Name}\"", l.Total);
            yield return 0;
        }

        Family(text, "forwarder_udp_sessions_closed_total", "counter", "Udp sessions ended, by reason (idle: udp.idleTimeout passed; unreachable: ICMP unreachable from the endpoint; reload: the endpoint or listener was removed; shutdown).");
        foreach (var l in listeners)
        {
            foreach (var reason in Enum.GetValues<UdpSessionEnd>())
            {
                Sample(text, "forwarder_udp_sessions_closed_total", $"listener=\"{l.Name}\",reason=\"{UdpMetrics.Label(reason)}\"", l.Ends(reason));
            }

            yield return 0;
        }

        Family(text, "forwarder_udp_datagrams_total", "counter", "Datagrams forwarded from clients to endpoints (rx) and from endpoints back to clients (tx).");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_udp_datagrams_total", $"listener=\"{l.Name}\",direction=\"rx\"", l.DatagramsIn);
            Sample(text, "forwarder_udp_datagrams_total", $"listener=\"{l.Name}\",direction=\"tx\"", l.DatagramsOut);
            yield return 0;
        }

        Family(text, "forwarder_udp_datagrams_dropped_total", "counter", "Datagrams not forwarded, by reason (no_endpoint: none available or reachable for a new session; session_limit: udp.maxSessions open; send_failed: the send failed).");
        foreach (var l in listeners)
        {
            foreach (var reason in Enum.GetValues<UdpDrop>())
            {
                Sample(text, "forwarder_udp_datagrams_dropped_total", $"listener=\"{l.Name}\",reason=\"{UdpMetrics.Label(reason)}\"", l.Drops(reason));
            }

            yield return 0;
        }
    }
}
