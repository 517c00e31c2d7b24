using System.Globalization;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.Admin;

/// <summary>Renders the metrics in the Prometheus text exposition format (version 0.0.4).</summary>
internal static class PrometheusWriter
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// Writes the exposition into <paramref name="text"/>, pausing after each series group (a
    /// listener, a service, ...) so the caller can flush: with thousands of services the text
    /// runs to megabytes, and it should go out as it is made.
    /// </summary>
    public static IEnumerable<int> Render(MetricsText text, ForwarderMetrics metrics, ProxyRuntime runtime, int openConnections)
    {
        var listeners = metrics.Listeners.ToArray();
        var services = metrics.Services.ToArray();

        Family(text, "forwarder_listener_connections_active", "gauge", "Client connections open on the listener.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_listener_connections_active", $"listener=\"{l.Name}\"", l.Active);
            yield return 0;
        }

        Family(text, "forwarder_listener_connections_total", "counter", "Client connections accepted by the listener.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_listener_connections_total", $"listener=\"{l.Name}\"", l.Total);
            yield return 0;
        }

        Family(text, "forwarder_listener_connections_rejected_total", "counter", "Connections closed at once because the listener's maxConnections was reached.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_listener_connections_rejected_total", $"listener=\"{l.Name}\"", l.Rejected);
            yield return 0;
        }

        Family(text, "forwarder_listener_accept_errors_total", "counter", "accept() failures, by reason (fd_limit: out of file descriptors, EMFILE/ENFILE); after each the listener pauses 100 ms, the connection waiting in the backlog.");
        foreach (var l in listeners)
        {
            foreach (var failure in Enum.GetValues<AcceptFailure>())
            {
                Sample(text, "forwarder_listener_accept_errors_total", $"listener=\"{l.Name}\",reason=\"{AcceptFailures.Label(failure)}\"", l.AcceptErrors(failure));
            }

            yield return 0;
        }

        var budget = runtime.Budget;
        Family(text, "forwarder_connections_limit", "gauge", "Proxied connections allowed at once across all listeners (limits.maxConnections, derived from RLIMIT_NOFILE unless set); each takes two sockets.");
        Sample(text, "forwarder_connections_limit", string.Empty, budget.MaxConnections);
        Family(text, "forwarder_connection_sockets_open", "gauge", "Proxied sockets open now, accepted and dialled, counted against twice forwarder_connections_limit.");
        Sample(text, "forwarder_connection_sockets_open", string.Empty, budget.OpenSockets);
        Family(text, "forwarder_connections_limit_reached_total", "counter", "Times the connection limit was reached: a listener paused accepting (accept) or a dial was refused locally (dial).");
        Sample(text, "forwarder_connections_limit_reached_total", "side=\"accept\"", budget.AcceptPauses);
        Sample(text, "forwarder_connections_limit_reached_total", "side=\"dial\"", budget.DialsRefused);

        Family(text, "forwarder_listener_bytes_total", "counter", "Bytes read from (rx) and written to (tx) clients.");
        foreach (var l in listeners)
        {
            Sample(text, "forwarder_listener_bytes_total", $"listener=\"{l.Name}\",direction=\"rx\"", l.BytesReceived);
            Sample(text, "forwarder_listener_bytes_total", $"listener=\"{l.Name}\",direction=\"tx\"", l.BytesSent);
            yield return 0;
        }

        Family(text, "forwarder_listener_tls_handshakes_total", "counter", "Finished TLS handshakes, by the protocol ALPN chose (http/1.1 also when the client offered none).");
        foreach (var l in listeners.Where(l => l.TlsHttp2 + l.TlsHttp11 + l.TlsFailed > 0))
        {
            Sample(text, "forwarder_listener_tls_handshakes_total", $"listener=\"{l.Name}\",protocol=\"h2\"", l.TlsHttp2);
            Sample(text, "forwarder_listener_tls_handshakes_total", $"listener=\"{l.Name}\",protocol=\"http/1.1\"", l.TlsHttp11);
            yield return 0;
        }

        Family(text, "forwarder_listener_tls_handshake_failures_total", "counter", "TLS handshakes that failed or did not finish within the handshake timeout; those connections are not counted as accepted.");
        foreach (var l in listeners.Where(l => l.TlsHttp2 + l.TlsHttp11 + l.TlsFailed > 0))
        {
            Sample(text, "forwarder_listener_tls_handshake_failures_total", $"listener=\"{l.Name}\"", l.TlsFailed);
            yield return 0;
        }

        Family(text, "forwarder_tls_certificate_expiry_timestamp_seconds", "gauge", "When each certificate a listener presents expires (Unix time), as last loaded from its file.");
        foreach (var model in runtime.ListenerModels)
        {
            foreach (var certificate in model.Http?.Tls?.Certificates ?? [])
            {
                var notAfter = new DateTimeOffset(certificate.Current.Leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero).ToUnixTimeSeconds();
                Sample(text, "forwarder_tls_certificate_expiry_timestamp_seconds", $"listener=\"{model.Config.Name}\",certificate=\"{LabelValue(certificate.Files.Certificate)}\"", notAfter);
            }

            yield return 0;
        }

        foreach (var step in NodeMetricsWriter.Render(text, metrics))
        {
            yield return step;
        }

        Family(text, "forwarder_service_connections_active", "gauge", "Upstream connections open to the service's endpoints.");
        foreach (var s in services)
        {
            Sample(text, "forwarder_service_connections_active", $"service=\"{s.Name}\"", s.Active);
            yield return 0;
        }

        Family(text, "forwarder_service_connections_total", "counter", "Upstream connections established to the service's endpoints.");
        foreach (var s in services)
        {
            Sample(text, "forwarder_service_connections_total", $"service=\"{s.Name}\"", s.Total);
            yield return 0;
        }

        Family(text, "forwarder_service_bytes_total", "counter", "Bytes sent to (tx) and received from (rx) the service's endpoints.");
        foreach (var s in services)
        {
            Sample(text, "forwarder_service_bytes_total", $"service=\"{s.Name}\",direction=\"tx\"", s.BytesToUpstream);
            Sample(text, "forwarder_service_bytes_total", $"service=\"{s.Name}\",direction=\"rx\"", s.BytesFromUpstream);
            yield return 0;
        }

        Family(text, "forwarder_upstream_connect_errors_total", "counter", "Failed attempts to connect to an endpoint, by reason.");
        foreach (var s in services)
        {
            foreach (var failure in Enum.GetValues<ConnectFailure>())
            {
                Sample(text, "forwarder_upstream_connect_errors_total", $"service=\"{s.Name}\",reason=\"{ConnectFailures.Label(failure)}\"", s.ConnectErrors(failure));
            }

            yield return 0;
        }

        Family(text, "forwarder_upstream_unavailable_total", "counter", "Client connections closed because no endpoint could be reached.");
        foreach (var s in services)
        {
            Sample(text, "forwarder_upstream_unavailable_total", $"service=\"{s.Name}\"", s.Exhausted);
            yield return 0;
        }

        Family(text, "forwarder_upstream_connect_duration_seconds", "histogram", "Time to establish upstream connections.");
        foreach (var s in services)
        {
            Histogram(text, "forwarder_upstream_connect_duration_seconds", $"service=\"{s.Name}\"", s.ConnectLatency);
            yield return 0;
        }

        Family(text, "forwarder_upstream_none_available_total", "counter", "Client connections closed because health left no endpoint to try (panicThreshold 0).");
        foreach (var s in services)
        {
            Sample(text, "forwarder_upstream_none_available_total", $"service=\"{s.Name}\"", s.NoneAvailableCount);
            yield return 0;
        }

        Family(text, "forwarder_upstream_pool_full_total", "counter", "Upstream connections not opened because the endpoint had http.maxConnections open already.");
        foreach (var s in services)
        {
            Sample(text, "forwarder_upstream_pool_full_total", $"service=\"{s.Name}\"", s.PoolFullCount);
            yield return 0;
        }

        foreach (var step in HttpMetricsWriter.Render(text, metrics, listeners, services))
        {
            yield return step;
        }

        foreach (var step in EndpointMetricsWriter.Render(text, runtime))
        {
            yield return step;
        }

        foreach (var step in UdpMetricsWriter.Render(text, metrics))
        {
            yield return step;
        }

        DiscoveryMetricsWriter.Write(text, metrics.Discovery, DateTimeOffset.UtcNow);
        Dns.DnsMetricsWriter.Write(text, metrics.Dns);
        Interception.InterceptMetricsWriter.Write(text, metrics.Intercept);
        Family(text, "forwarder_config_reloads_total", "counter", "Config reloads, by result.");
        Sample(text, "forwarder_config_reloads_total", "result=\"ok\"", metrics.ReloadsSucceeded);
        Sample(text, "forwarder_config_reloads_total", "result=\"failed\"", metrics.ReloadsFailed);

        Family(text, "forwarder_config_last_reload_successful", "gauge", "1 when the last config load succeeded, 0 when it was rejected.");
        Sample(text, "forwarder_config_last_reload_successful", string.Empty, runtime.Status.Succeeded ? 1 : 0);

        Family(text, "forwarder_connections_open", "gauge", "Connections open across all listeners, including those draining.");
        Sample(text, "forwarder_connections_open", string.Empty, openConnections);
        WriteProcess(text);
    }

    /// <summary>The runtime's own figures: what memory the process holds and how hard the GC works.</summary>
    private static void WriteProcess(MetricsText text)
    {
        var gc = GC.GetGCMemoryInfo();
        Family(text, "forwarder_process_working_set_bytes", "gauge", "Resident memory of the process.");
        Sample(text, "forwarder_process_working_set_bytes", string.Empty, Environment.WorkingSet);
        Family(text, "forwarder_process_gc_heap_bytes", "gauge", "Managed heap size after the last collection, fragmentation included.");
        Sample(text, "forwarder_process_gc_heap_bytes", string.Empty, gc.HeapSizeBytes);
        Family(text, "forwarder_process_gc_committed_bytes", "gauge", "Memory the GC has committed from the OS.");
        Sample(text, "forwarder_process_gc_committed_bytes", string.Empty, gc.TotalCommittedBytes);
        Family(text, "forwarder_process_allocated_bytes_total", "counter", "Bytes allocated on the managed heap since start.");
        Sample(text, "forwarder_process_allocated_bytes_total", string.Empty, GC.GetTotalAllocatedBytes());
        Family(text, "forwarder_process_gc_collections_total", "counter", "Garbage collections, by generation.");
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            Sample(text, "forwarder_process_gc_collections_total", $"generation=\"{generation}\"", GC.CollectionCount(generation));
        }
    }

    /// <summary>The _bucket series (le="+Inf" last), _sum and _count of one histogram series; the family is declared by the caller.</summary>
    internal static void Histogram(MetricsText text, string name, string labels, LatencyHistogram histogram)
    {
        var cumulative = histogram.CumulativeCounts();
        for (var i = 0; i < LatencyHistogram.Bounds.Length; i++)
        {
            Sample(text, $"{name}_bucket", $"{labels},le=\"{LatencyHistogram.Bounds[i].ToString(CultureInfo.InvariantCulture)}\"", cumulative[i]);
        }

        Sample(text, $"{name}_bucket", $"{labels},le=\"+Inf\"", cumulative[^1]);
        text.Append(name).Append("_sum{").Append(labels).Append("} ").Append(histogram.SumSeconds).Append('\n');
        Sample(text, $"{name}_count", labels, cumulative[^1]);
    }

    /// <summary>
    /// A label value as the text format wants it: backslash, double quote and line feed escaped.
    /// Listener and service names need none (the config allows letters, digits, '-', '_' and '.'); route names are free text.
    /// </summary>
    internal static string LabelValue(string value)
        => value.Replace("\\", "\\\\", StringComparison.Ordinal)
            .Replace("\"", "\\\"", StringComparison.Ordinal)
            .Replace("\n", "\\n", StringComparison.Ordinal);

    internal static void Family(MetricsText text, string name, string type, string help)
        => text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
            .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    internal static void Sample(MetricsText text, string name, string labels, long value)
    {
        text.Append(name);
        if (labels.Length > 0)
        {
            text.Append('{').Append(labels).Append('}');
        }

        text.Append(' ').Append(value).Append('\n');
    }
}
