using Forwarder.Admin;
using Forwarder.Metrics;

namespace Forwarder.Dns;

/// <summary>Renders the forwarder_dns_* series for /metrics, when a dns section started the server.</summary>
internal static class DnsMetricsWriter
{
    public static void Write(MetricsText text, DnsMetrics dns)
    {
        if (!dns.Enabled)
        {
            return;
        }

        PrometheusWriter.Family(text, "forwarder_dns_queries_total", "counter", "DNS queries answered, by question type and result (answer, nodata, nxdomain from the cluster model; forwarded, cached, servfail for other names).");
        for (var type = 0; type < DnsMetrics.TypeLabels.Length; type++)
        {
            foreach (var result in Enum.GetValues<DnsResult>())
            {
                if (dns.Queries(type, result) is var count and > 0)
                {
                    PrometheusWriter.Sample(text, "forwarder_dns_queries_total", $"type=\"{DnsMetrics.TypeLabels[type]}\",result=\"{DnsMetrics.ResultLabel(result)}\"", count);
                }
            }
        }

        Counter(text, "forwarder_dns_dropped_total", "Messages ignored: shorter than a DNS header, or responses.", dns.Dropped);
        Counter(text, "forwarder_dns_cache_hits_total", "Queries for other names answered from the cache.", dns.CacheHits);
        Counter(text, "forwarder_dns_cache_misses_total", "Queries for other names the cache could not answer.", dns.CacheMisses);
        Counter(text, "forwarder_dns_coalesced_total", "Queries that joined an identical one already in flight upstream.", dns.Coalesced);
        PrometheusWriter.Family(text, "forwarder_dns_cache_entries", "gauge", "Upstream answers cached.");
        PrometheusWriter.Sample(text, "forwarder_dns_cache_entries", string.Empty, dns.CacheEntries);
        var upstreams = dns.Upstreams.ToArray();
        PrometheusWriter.Family(text, "forwarder_dns_upstream_failures_total", "counter", "Exchanges with the upstream resolver that timed out or failed (the next one was asked).");
        foreach (var upstream in upstreams)
        {
            PrometheusWriter.Sample(text, "forwarder_dns_upstream_failures_total", $"upstream=\"{upstream.Name}\"", upstream.Failures);
        }

        PrometheusWriter.Family(text, "forwarder_dns_upstream_tcp_retries_total", "counter", "Truncated UDP answers from the upstream asked again over TCP.");
        foreach (var upstream in upstreams)
        {
            PrometheusWriter.Sample(text, "forwarder_dns_upstream_tcp_retries_total", $"upstream=\"{upstream.Name}\"", upstream.TcpRetries);
        }

        PrometheusWriter.Family(text, "forwarder_dns_upstream_latency_seconds", "histogram", "Time to an upstream resolver's answer.");
        foreach (var upstream in upstreams)
        {
            PrometheusWriter.Histogram(text, "forwarder_dns_upstream_latency_seconds", $"upstream=\"{upstream.Name}\"", upstream.Latency);
        }
    }

    private static void Counter(MetricsText text, string name, string help, long value)
    {
        PrometheusWriter.Family(text, name, "counter", help);
        PrometheusWriter.Sample(text, name, string.Empty, value);
    }
}
