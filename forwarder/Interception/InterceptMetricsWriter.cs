using Forwarder.Admin;

namespace Forwarder.Interception;

/// <summary>Renders the intercept listener's counters for /metrics, when an intercept section started it.</summary>
internal static class InterceptMetricsWriter
{
    private const string Connections = "forwarder_intercept_connections_total";

    public static void Write(MetricsText text, InterceptMetrics intercept)
    {
        if (!intercept.Enabled)
        {
            return;
        }

        PrometheusWriter.Family(text, Connections, "counter", "Intercepted connections, by result: served, unknown_destination (no VIP matched; reset), not_redirected (made to the intercept port directly; reset).");
        PrometheusWriter.Sample(text, Connections, "result=\"served\"", intercept.Served);
        PrometheusWriter.Sample(text, Connections, "result=\"unknown_destination\"", intercept.UnknownDestination);
        PrometheusWriter.Sample(text, Connections, "result=\"not_redirected\"", intercept.NotRedirected);
        Single(text, "forwarder_intercept_vips", "gauge", "TCP VIPs (IP:port) the intercept listener serves.", intercept.Vips);
        Single(text, "forwarder_intercept_udp_vips", "gauge", "UDP VIPs (IP:port) served, each by a udp listener named intercept:VIP/udp (its forwarder_udp_* series).", intercept.UdpVips);
        Single(text, "forwarder_intercept_rules_installed", "gauge", "1 while the forwarder's own iptables rules are in place (0 when manageRules is false).", intercept.RulesInstalled);
        Single(text, "forwarder_intercept_rule_errors_total", "counter", "iptables-restore runs that failed (the rules in place stay as they were).", intercept.RuleErrors);
    }

    private static void Single(MetricsText text, string name, string type, string help, long value)
    {
        PrometheusWriter.Family(text, name, type, help);
        PrometheusWriter.Sample(text, name, string.Empty, value);
    }
}
