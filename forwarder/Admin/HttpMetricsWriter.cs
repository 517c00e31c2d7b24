using Forwarder.Metrics;
using static Forwarder.Admin.PrometheusWriter;

namespace Forwarder.Admin;

/// <summary>Renders the HTTP families of the Prometheus exposition: per route, per service, and the requests listeners answered themselves.</summary>
internal static class HttpMetricsWriter
{
    /// <summary>Writes the families, pausing after each series group like <see cref="PrometheusWriter.Render"/>.</summary>
    public static IEnumerable<int> Render(MetricsText text, ForwarderMetrics metrics, ListenerMetrics[] listeners, ServiceMetrics[] services)
    {
        var routes = Families(text, "forwarder_route", "matched by the route", [.. metrics.Routes.Select(r => ($"listener=\"{r.Key.Listener}\",route=\"{LabelValue(r.Key.Route)}\"", r.Metrics))]);
        var perService = Families(text, "forwarder_service_http", "routed to the service", [.. services.Select(s => ($"service=\"{s.Name}\"", s.Http))]);
        foreach (var step in routes.Concat(perService))
        {
            yield return step;
        }

        Family(text, "forwarder_listener_http_refused_total", "counter", "HTTP requests the proxy answered itself with an error response (no route, body too large, no endpoint, ...), by status.");
        foreach (var l in listeners)
        {
            foreach (var (status, count) in l.Refused())
            {
                Sample(text, "forwarder_listener_http_refused_total", $"listener=\"{l.Name}\",status=\"{status}\"", count);
            }

            yield return 0;
        }

        Family(text, "forwarder_listener_http2_goaway_total", "counter", "HTTP/2 client connections the proxy closed with a GOAWAY of its own, by reason (header_timeout, idle: NO_ERROR; ping_flood, settings_flood, rapid_reset: ENHANCE_YOUR_CALM).");
        foreach (var l in listeners)
        {
            foreach (var reason in Enum.GetValues<Http2GoAwayReason>())
            {
                if (l.Http2GoAways(reason) is > 0 and var count)
                {
                    Sample(text, "forwarder_listener_http2_goaway_total", $"listener=\"{l.Name}\",reason=\"{Http2GoAwayReasons.Label(reason)}\"", count);
                }
            }
        }

        Family(text, "forwarder_listener_http2_response_buffered_bytes", "gauge", "Response bytes the native HTTP/2 front holds from upstreams that its clients have not taken yet, short of the up to 64 KiB per stream already in its client-facing response buffer (all told bounded per client connection by http.responseBufferPerConnection plus 128 KiB per stream).");
        foreach (var l in listeners.Where(l => l.Http2ResponsesBuffered))
        {
            Sample(text, "forwarder_listener_http2_response_buffered_bytes", $"listener=\"{l.Name}\"", l.Http2ResponseBuffered);
        }

        Family(text, "forwarder_listener_http2_response_budget_held_bytes", "gauge", "Window credit the native HTTP/2 front's per-connection response budgets (http.responseBufferPerConnection) have granted upstream streams past their 64 KiB opening windows and not had back yet: what those streams may still send before a client reads.");
        foreach (var l in listeners.Where(l => l.Http2ResponsesBuffered))
        {
            Sample(text, "forwarder_listener_http2_response_budget_held_bytes", $"listener=\"{l.Name}\"", l.Http2ResponseBudgetHeld);
        }

        Family(text, "forwarder_listener_http2_response_buffer_full_total", "counter", "Times the native HTTP/2 front held back an upstream stream's window because its client connection's response buffer (http.responseBufferPerConnection) was full.");
        foreach (var l in listeners)
        {
            if (l.Http2ResponseBudgetExhaustions is > 0 and var count)
            {
                Sample(text, "forwarder_listener_http2_response_buffer_full_total", $"listener=\"{l.Name}\"", count);
            }
        }
    }

    /// <summary>The five families of one kind of <see cref="HttpMetrics"/> owner, every family declared even with no series.</summary>
    private static IEnumerable<int> Families(MetricsText text, string prefix, string requests, (string Labels, HttpMetrics Metrics)[] series)
    {
        Family(text, $"{prefix}_requests_total", "counter", $"HTTP requests {requests}.");
        foreach (var (labels, http) in series)
        {
            Sample(text, $"{prefix}_requests_total", labels, http.Requests);
            yield return 0;
        }

        Family(text, $"{prefix}_responses_total", "counter", $"Responses to HTTP requests {requests}, from upstream or the proxy itself, by status class.");
        foreach (var (labels, http) in series)
        {
            for (var i = 0; i < HttpMetrics.StatusClasses.Length; i++)
            {
                Sample(text, $"{prefix}_responses_total", $"{labels},class=\"{HttpMetrics.StatusClasses[i]}\"", http.Responses(i));
            }

            yield return 0;
        }

        Family(text, $"{prefix}_retries_total", "counter", $"Retries of HTTP requests {requests}.");
        foreach (var (labels, http) in series)
        {
            Sample(text, $"{prefix}_retries_total", labels, http.Retries);
            yield return 0;
        }

        Family(text, $"{prefix}_aborted_total", "counter", $"HTTP requests {requests} that ended without a complete response: the client left, or the upstream failed mid-response.");
        foreach (var (labels, http) in series)
        {
            Sample(text, $"{prefix}_aborted_total", labels, http.Aborted);
            yield return 0;
        }

        Family(text, $"{prefix}_upstream_latency_seconds", "histogram", $"Time from request head sent upstream to response head received, for HTTP requests {requests}.");
        foreach (var (labels, http) in series)
        {
            Histogram(text, $"{prefix}_upstream_latency_seconds", labels, http.UpstreamLatency);
            yield return 0;
        }
    }
}
