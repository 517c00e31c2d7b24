using System.Globalization;
using System.Text.RegularExpressions;
using Forwarder.Admin;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tests.Admin;

/// <summary>The HTTP families of /metrics, rendered from counters filled in directly: no listener is bound, no request sent.</summary>
public sealed partial class PrometheusHttpMetricsTests
{
    // A runtime that is built but never started: it binds nothing and has no services yet.
    private const string Yaml = """
        tcp: { engine: pipes }
        listeners:
          - name: web
            listen: 127.0.0.1:0
            protocol: tcp
            service: back
        services:
          back:
            endpoints:
              - address: 127.0.0.1:1
        """;

    [Fact]
    public void Write_HttpCounters_ExportsRouteServiceAndRefusedFamilies()
    {
        var metrics = new ForwarderMetrics();
        var api = metrics.Route("web", "api");
        for (var i = 0; i < 3; i++)
        {
            api.RequestStarted();
        }

        api.Responded(200);
        api.Responded(204);
        api.Responded(503);
        api.Retried();
        api.Abort();
        api.UpstreamLatency.Record(TimeSpan.FromMilliseconds(3));
        api.UpstreamLatency.Record(TimeSpan.FromMilliseconds(200));
        var odd = metrics.Route("web", "a\"b\\c\nd");
        odd.RequestStarted();
        odd.Responded(101);

        var back = metrics.Service("back").Http;
        back.RequestStarted();
        back.RequestStarted();
        back.Responded(302);
        back.Responded(404);
        back.Retried();
        back.Retried();
        back.UpstreamLatency.Record(TimeSpan.FromSeconds(12));

        var web = metrics.Listener("web");
        web.HttpRefused(503);
        web.HttpRefused(404);
        web.HttpRefused(404);
        web.Http2GoAway(Http2GoAwayReason.RapidReset);
        web.AddHttp2ResponseBuffered(4096);
        web.AddHttp2ResponseBudgetHeld(32768);
        web.Http2ResponseBudgetExhausted();
        metrics.Listener("quiet");

        var text = Render(metrics);

        AssertLines(text, """
            # HELP forwarder_route_requests_total HTTP requests matched by the route.
            # TYPE forwarder_route_requests_total counter
            forwarder_route_requests_total{listener="web",route="a\"b\\c\nd"} 1
            forwarder_route_requests_total{listener="web",route="api"} 3
            # HELP forwarder_route_responses_total Responses to HTTP requests matched by the route, from upstream or the proxy itself, by status class.
            # TYPE forwarder_route_responses_total counter
            forwarder_route_responses_total{listener="web",route="a\"b\\c\nd",class="1xx"} 1
            forwarder_route_responses_total{listener="web",route="a\"b\\c\nd",class="2xx"} 0
            forwarder_route_responses_total{listener="web",route="a\"b\\c\nd",class="3xx"} 0
            forwarder_route_responses_total{listener="web",route="a\"b\\c\nd",class="4xx"} 0
            forwarder_route_responses_total{listener="web",route="a\"b\\c\nd",class="5xx"} 0
            forwarder_route_responses_total{listener="web",route="api",class="1xx"} 0
            forwarder_route_responses_total{listener="web",route="api",class="2xx"} 2
            forwarder_route_responses_total{listener="web",route="api",class="3xx"} 0
            forwarder_route_responses_total{listener="web",route="api",class="4xx"} 0
            forwarder_route_responses_total{listener="web",route="api",class="5xx"} 1
            # HELP forwarder_route_retries_total Retries of HTTP requests matched by the route.
            # TYPE forwarder_route_retries_total counter
            forwarder_route_retries_total{listener="web",route="a\"b\\c\nd"} 0
            forwarder_route_retries_total{listener="web",route="api"} 1
            # HELP forwarder_route_aborted_total HTTP requests matched by the route that ended without a complete response: the client left, or the upstream failed mid-response.
            # TYPE forwarder_route_aborted_total counter
            forwarder_route_aborted_total{listener="web",route="a\"b\\c\nd"} 0
            forwarder_route_aborted_total{listener="web",route="api"} 1
            # HELP forwarder_route_upstream_latency_seconds Time from request head sent upstream to response head received, for HTTP requests matched by the route.
            # TYPE forwarder_route_upstream_latency_seconds histogram
            """);
        AssertLines(text, """
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.0005"} 0
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.001"} 0
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.0025"} 0
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.005"} 1
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.01"} 1
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.025"} 1
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.05"} 1
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.1"} 1
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.25"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="0.5"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="1"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="2.5"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="5"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="10"} 2
            forwarder_route_upstream_latency_seconds_bucket{listener="web",route="api",le="+Inf"} 2
            forwarder_route_upstream_latency_seconds_sum{listener="web",route="api"} 0.203
            forwarder_route_upstream_latency_seconds_count{listener="web",route="api"} 2
            # HELP forwarder_service_http_requests_total HTTP requests routed to the service.
            # TYPE forwarder_service_http_requests_total counter
            forwarder_service_http_requests_total{service="back"} 2
            # HELP forwarder_service_http_responses_total Responses to HTTP requests routed to the service, from upstream or the proxy itself, by status class.
            # TYPE forwarder_service_http_responses_total counter
            forwarder_service_http_responses_total{service="back",class="1xx"} 0
            forwarder_service_http_responses_total{service="back",class="2xx"} 0
            forwarder_service_http_responses_total{service="back",class="3xx"} 1
            forwarder_service_http_responses_total{service="back",class="4xx"} 1
            forwarder_service_http_responses_total{service="back",class="5xx"} 0
            # HELP forwarder_service_http_retries_total Retries of HTTP requests routed to the service.
            # TYPE forwarder_service_http_retries_total counter
            forwarder_service_http_retries_total{service="back"} 2
            # HELP forwarder_service_http_aborted_total HTTP requests routed to the service that ended without a complete response: the client left, or the upstream failed mid-response.
            # TYPE forwarder_service_http_aborted_total counter
            forwarder_service_http_aborted_total{service="back"} 0
            # HELP forwarder_service_http_upstream_latency_seconds Time from request head sent upstream to response head received, for HTTP requests routed to the service.
            # TYPE forwarder_service_http_upstream_latency_seconds histogram
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.0005"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.001"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.0025"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.005"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.01"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.025"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.05"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.1"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.25"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="0.5"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="1"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="2.5"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="5"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="10"} 0
            forwarder_service_http_upstream_latency_seconds_bucket{service="back",le="+Inf"} 1
            forwarder_service_http_upstream_latency_seconds_sum{service="back"} 12
            forwarder_service_http_upstream_latency_seconds_count{service="back"} 1
            # HELP forwarder_listener_http_refused_total HTTP requests the proxy answered itself with an error response (no route, body too large, no endpoint, ...), by status.
            # TYPE forwarder_listener_http_refused_total counter
            forwarder_listener_http_refused_total{listener="web",status="404"} 2
            forwarder_listener_http_refused_total{listener="web",status="503"} 1
            # HELP forwarder_listener_http2_goaway_total HTTP/2 client connections the proxy closed with a GOAWAY of its own, by reason (header_timeout, idle: NO_ERROR; ping_flood, settings_flood, rapid_reset: ENHANCE_YOUR_CALM).
            # TYPE forwarder_listener_http2_goaway_total counter
            forwarder_listener_http2_goaway_total{listener="web",reason="rapid_reset"} 1
            # HELP forwarder_listener_http2_response_buffered_bytes Response bytes the native HTTP/2 front holds from upstreams that its clients have not taken yet, short of the up to 64 KiB per stream already in its client-facing response buffer (all told bounded per client connection by http.responseBufferPerConnection plus 128 KiB per stream).
            # TYPE forwarder_listener_http2_response_buffered_bytes gauge
            forwarder_listener_http2_response_buffered_bytes{listener="web"} 4096
            # HELP forwarder_listener_http2_response_budget_held_bytes Window credit the native HTTP/2 front's per-connection response budgets (http.responseBufferPerConnection) have granted upstream streams past their 64 KiB opening windows and not had back yet: what those streams may still send before a client reads.
            # TYPE forwarder_listener_http2_response_budget_held_bytes gauge
            forwarder_listener_http2_response_budget_held_bytes{listener="web"} 32768
            # HELP forwarder_listener_http2_response_buffer_full_total Times the native HTTP/2 front held back an upstream stream's window because its client connection's response buffer (http.responseBufferPerConnection) was full.
            # TYPE forwarder_listener_http2_response_buffer_full_total counter
            forwarder_listener_http2_response_buffer_full_total{listener="web"} 1
            # HELP forwarder_service_endpoints_available Endpoints that health lets take traffic.
            """);

        // The route with free-text name has an (empty) histogram of its own.
        Assert.Contains("forwarder_route_upstream_latency_seconds_count{listener=\"web\",route=\"a\\\"b\\\\c\\nd\"} 0\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("listener=\"quiet\",status=", text, StringComparison.Ordinal);
        AssertValidExposition(text);
    }

    [Fact]
    public void Write_NoHttpTraffic_DeclaresEveryHttpFamilyWithoutSeries()
    {
        var metrics = new ForwarderMetrics();
        metrics.Listener("web").ConnectionOpened();

        var text = Render(metrics);

        foreach (var (name, type) in new[]
        {
            ("forwarder_route_requests_total", "counter"), ("forwarder_route_responses_total", "counter"), ("forwarder_route_retries_total", "counter"),
            ("forwarder_route_aborted_total", "counter"), ("forwarder_route_upstream_latency_seconds", "histogram"),
            ("forwarder_service_http_requests_total", "counter"), ("forwarder_service_http_responses_total", "counter"), ("forwarder_service_http_retries_total", "counter"),
            ("forwarder_service_http_aborted_total", "counter"), ("forwarder_service_http_upstream_latency_seconds", "histogram"),
            ("forwarder_listener_http_refused_total", "counter"), ("forwarder_listener_http2_goaway_total", "counter"),
            ("forwarder_listener_http2_response_buffered_bytes", "gauge"), ("forwarder_listener_http2_response_budget_held_bytes", "gauge"),
            ("forwarder_listener_http2_response_buffer_full_total", "counter"),
        })
        {
            Assert.Single(Regex.Matches(text, $"^# TYPE {name} {type}$", RegexOptions.Multiline));
            Assert.DoesNotContain(text.Split('\n'), l => l.StartsWith(name, StringComparison.Ordinal));
        }

        AssertValidExposition(text);
    }

    /// <summary>Renders through the same entry point the admin server's /metrics uses.</summary>
    private static string Render(ForwarderMetrics metrics)
    {
        using var host = ForwarderHost.Build(new ConfigSource(null, ConfigLoader.Parse(Yaml, "test.yaml")), new LoggingOptions(LogLevel.Warning, Json: false));
        return PrometheusText.Render(metrics, host.Services.GetRequiredService<ProxyRuntime>());
    }

    /// <summary>The expected lines appear in the output in this order, one after the other.</summary>
    private static void AssertLines(string text, string expected)
        => Assert.Contains("\n" + expected.ReplaceLineEndings("\n") + "\n", "\n" + text, StringComparison.Ordinal);

    /// <summary>
    /// Checks the text exposition format 0.0.4 as a scraper reads it: each family's HELP then TYPE once, its samples
    /// right after (histograms as _bucket with le, _sum and _count), well-formed and escaped labels, numeric values,
    /// no series twice, and histogram buckets cumulative with the +Inf bucket equal to _count.
    /// </summary>
    private static void AssertValidExposition(string text)
    {
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        var declared = new HashSet<string>(StringComparer.Ordinal);
        var series = new HashSet<string>(StringComparer.Ordinal);
        var buckets = new Dictionary<string, List<(double Le, double Count)>>(StringComparer.Ordinal);
        var counts = new Dictionary<string, double>(StringComparer.Ordinal);
        string? help = null;
        (string Name, string Type)? family = null;
        foreach (var line in text[..^1].Split('\n'))
        {
            if (HelpLine().Match(line) is { Success: true } h)
            {
                Assert.Null(help);
                help = h.Groups["name"].Value;
                continue;
            }

            if (TypeLine().Match(line) is { Success: true } t)
            {
                var name = t.Groups["name"].Value;
                Assert.True(help == name, $"TYPE without its HELP just before: {line}");
                Assert.True(declared.Add(name), $"family declared twice: {name}");
                family = (name, t.Groups["type"].Value);
                help = null;
                continue;
            }

            Assert.Null(help);
            var sample = SampleLine().Match(line);
            Assert.True(sample.Success, $"not a sample line: {line}");
            Assert.True(family is not null, $"sample before any TYPE: {line}");
            var (familyName, type) = family.Value;
            var metric = sample.Groups["name"].Value;
            var suffix = type == "histogram" && metric.StartsWith(familyName, StringComparison.Ordinal) ? metric[familyName.Length..] : string.Empty;
            Assert.True(type == "histogram" ? suffix is "_bucket" or "_sum" or "_count" : metric == familyName, $"sample outside its family {familyName} ({type}): {line}");
            Assert.True(double.TryParse(sample.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var value), $"value not a number: {line}");

            var labels = sample.Groups["labels"].Success ? sample.Groups["labels"].Value : string.Empty;
            var pairs = LabelPair().Matches(labels);
            Assert.True(string.Concat(pairs.Select(p => p.Value)) == labels && pairs.SkipLast(1).All(p => p.Value.EndsWith(',')), $"malformed labels: {line}");
            var names = pairs.Select(p => p.Groups["label"].Value).ToArray();
            Assert.True(names.Distinct(StringComparer.Ordinal).Count() == names.Length, $"label repeated: {line}");
            Assert.True(series.Add($"{metric}{{{labels}}}"), $"series twice: {line}");

            if (suffix == "_bucket")
            {
                var le = pairs.SingleOrDefault(p => p.Groups["label"].Value == "le");
                Assert.True(le is not null && pairs[^1].Index == le.Index, $"bucket without le last: {line}");
                var bound = le.Groups["value"].Value == "+Inf" ? double.PositiveInfinity : double.Parse(le.Groups["value"].Value, CultureInfo.InvariantCulture);
                var key = $"{familyName}{{{labels[..^(le.Value.Length)].TrimEnd(',')}}}";
                var list = buckets.TryGetValue(key, out var existing) ? existing : buckets[key] = [];
                Assert.True(list.Count == 0 || (list[^1].Le < bound && list[^1].Count <= value), $"buckets not ascending and cumulative: {line}");
                list.Add((bound, value));
            }
            else if (suffix == "_count")
            {
                counts[$"{familyName}{{{labels}}}"] = value;
            }
        }

        Assert.Null(help);
        foreach (var (key, list) in buckets)
        {
            Assert.True(double.IsPositiveInfinity(list[^1].Le), $"no +Inf bucket: {key}");
            Assert.True(counts.TryGetValue(key, out var count) && count == list[^1].Count, $"_count differs from the +Inf bucket: {key}");
        }

        Assert.Equal(buckets.Count, counts.Count);
    }

    [GeneratedRegex(@"^# HELP (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]+$")]
    private static partial Regex HelpLine();

    [GeneratedRegex(@"^# TYPE (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?<type>counter|gauge|histogram|summary|untyped)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>[^ ]+)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<label>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(?:[^""\\\n]|\\[\\""n])*)"",?")]
    private static partial Regex LabelPair();
}
