using System.Globalization;
using System.Text;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Mesh;

/// <summary>
/// Writes the mesh experiment to <c>perf-reports/NAME/report.md</c>: latency and cost per arm and
/// rate, then the published EdgeMesh-vs-Istio and Kmesh-vs-sidecar figures row by row next to the
/// same ratios measured here. Figures are medians over the repetitions.
/// </summary>
internal static class MeshReportWriter
{
    private const string Node = "node-forwarder";
    private const string Sidecar = "sidecar-haproxy";
    private const string OurSidecar = "sidecar-forwarder";
    private const string None = "no-mesh";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static void Write(MeshResult result, string directory)
    {
        Directory.CreateDirectory(directory);
        var options = result.Options;
        var text = new StringBuilder();
        text.AppendLine("# Service mesh data planes: node mode against sidecars");
        text.AppendLine();
        text.AppendLine(Invariant, $"`bench mesh`, {result.StartedAt:yyyy-MM-dd HH:mm} UTC, on {result.Machine}. A client app calls a service of {options.Instances} instances spread over {options.Nodes} nodes (groups of processes on this one machine; instances of a node share one backend process). The client runs on every node: its {options.Connections} connections go to the nodes in turn. Open-loop rates measure latency from each request's intended start; `max` is a closed loop. Each run lasts {Format.Duration(options.Duration)} (longer at low rates, for at least 300 requests) after {Format.Duration(options.Warmup)} of warm-up; {options.Reps} repetitions interleaved; medians. Every proxy runs one thread. Envoy cannot be installed here (no Debian or npm package), so HAProxy 2.6 stands in for istio-proxy; it is lighter than Envoy, which makes the sidecar arm look better than Istio would.");
        text.AppendLine();
        CompareReportWriter.WriteTools(text, result.Versions, result.Skipped);

        text.AppendLine();
        text.AppendLine("| arm | what | proxies | idle RSS, all proxies |");
        text.AppendLine("|---|---|---:|---:|");
        foreach (var footprint in result.Footprints.Where(f => f.Protocol == options.Protocols[0]))
        {
            text.AppendLine(Invariant, $"| {footprint.Arm} | {MeshArms.All[footprint.Arm].Description} | {footprint.Proxies} | {Mib(footprint.IdleRssBytes)} |");
        }

        CompareReportWriter.WriteUnclean(text, result.Unclean.Select(r => ($"{r.Protocol.ToString().ToLowerInvariant()} {r.Arm}", r.Rate, r.Rep, r.Stats)));
        foreach (var protocol in options.Protocols)
        {
            WriteProtocol(text, result, protocol);
        }

        WritePublished(text, result);
        File.WriteAllText(Path.Combine(directory, "report.md"), text.ToString());
        CompareReportWriter.Index(directory, Path.GetFileName(Path.GetFullPath(directory)), Headline(result));
    }

    private static void WriteProtocol(StringBuilder text, MeshResult result, CompareProtocol protocol)
    {
        var rates = result.Options.Rates;
        var arms = result.ArmsOf(protocol).ToArray();
        text.AppendLine();
        text.AppendLine(Invariant, $"## {(protocol == CompareProtocol.Http ? "HTTP/1.1" : "TCP request/response (64 bytes)")}");
        text.AppendLine();
        text.AppendLine("Latency, p50 / p99:");
        text.AppendLine();
        text.AppendLine("| arm | " + string.Join(" | ", rates.Select(RateLabel)) + " |");
        text.AppendLine("|---|" + string.Concat(rates.Select(_ => "---:|")));
        foreach (var arm in arms)
        {
            text.AppendLine($"| {arm} | " + string.Join(" | ", rates.Select(rate => $"{Format.Latency(Percentile(result, protocol, arm, rate, 50))} / {Format.Latency(Percentile(result, protocol, arm, rate, 99))}")) + " |");
        }

        text.AppendLine();
        text.AppendLine("Latency the data plane adds over no mesh at p50 (per hop for sidecars, which cross two):");
        text.AppendLine();
        text.AppendLine("| arm | " + string.Join(" | ", rates.Select(RateLabel)) + " |");
        text.AppendLine("|---|" + string.Concat(rates.Select(_ => "---:|")));
        foreach (var arm in arms.Where(a => a != None))
        {
            text.AppendLine($"| {arm} | " + string.Join(" | ", rates.Select(rate => AddedLatency(result, protocol, arm, rate))) + " |");
        }

        text.AppendLine();
        text.AppendLine("Throughput and the data plane's cost (CPU of all its proxies per 1,000 requests; peak RSS of all of them):");
        text.AppendLine();
        text.AppendLine("| arm | max req/s | vs no mesh | CPU at max | CPU at 100 req/s | peak RSS at max |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|");
        var direct = Throughput(result, protocol, None);
        foreach (var arm in arms)
        {
            var throughput = Throughput(result, protocol, arm);
            text.AppendLine(Invariant, $"| {arm} | {throughput:0} | {(direct > 0 ? (throughput / direct).ToString("0.00x", Invariant) : "")} | {CpuCell(result, protocol, arm, null)} | {CpuCell(result, protocol, arm, 100)} | {RssCell(result, protocol, arm, null)} |");
        }
    }

    private static void WritePublished(StringBuilder text, MeshResult result)
    {
        var http = CompareProtocol.Http;
        var tcp = CompareProtocol.Tcp;
        var proxies = result.Footprints.Where(f => f.Protocol == result.Options.Protocols[0]).ToDictionary(f => f.Arm, f => f.Proxies);
        text.AppendLine();
        text.AppendLine("## Published figures next to ours");
        text.AppendLine();
        text.AppendLine(Invariant, $"Published: EdgeMesh's performance test (edgemesh-agent against istio-proxy, service-mesh-benchmark) and Huawei's Kmesh talk (Kmesh against sidecar meshes). Ours: {Node} against {Sidecar} (the Envoy stand-in) and {OurSidecar} (our own proxy as a sidecar), HTTP/1.1 unless the row says TCP. A blank means that arm or protocol was not run.");
        text.AppendLine();
        text.AppendLine("| claim | published | measured here | why it differs |");
        text.AppendLine("|---|---|---|---|");
        Row(text, "memory of one node proxy / one sidecar (equal load)", "≈30%",
            PerProxyRatio(result, http, 100, proxies, r => r.PeakRssBytes),
            "ours runs .NET (a managed heap, ~70 MiB idle) against HAProxy (~15 MiB); istio-proxy is Envoy at ~50-100 MiB, so against it a node proxy's share is far lower than against HAProxy");
        Row(text, "CPU of one node proxy / one sidecar (equal load)", "≈10%",
            PerProxyRatio(result, http, 100, proxies, r => r.CpuSeconds),
            "a node proxy carries every instance's traffic, a sidecar only its own; per proxy the node proxy does more work, the whole data plane less");
        Row(text, "data-plane processes: node mode scales with nodes, sidecars with instances", "M vs K+M",
            proxies.TryGetValue(Node, out var n) && proxies.TryGetValue(Sidecar, out var s) ? $"{n} vs {s} processes; idle RSS {Mib(Idle(result, Node))} vs {Mib(Idle(result, Sidecar))} ({Mib(Idle(result, OurSidecar))} with our sidecars)" : "",
            "same shape by construction");
        foreach (var rate in new double[] { 20, 100 })
        {
            Row(text, string.Create(Invariant, $"added latency at {rate:0} req/s: sidecars / node mode"), "≈10x faster forwarding",
                Ratio(Added(result, http, Sidecar, rate), Added(result, http, Node, rate), "0.0x") + " (ours as sidecars: " + Ratio(Added(result, http, OurSidecar, rate), Added(result, http, Node, rate), "0.0x") + ")",
                "Envoy's filter chain and Istio's mTLS cost far more per hop than HAProxy's plain forwarding; on loopback, without mTLS, the sidecar arm pays only for its extra hop");
            Row(text, string.Create(Invariant, $"end-to-end p50 at {rate:0} req/s: node mode / no mesh"), "almost equal",
                Ratio(Percentile(result, http, Node, rate, 50), Percentile(result, http, None, rate, 50), "0.00x") + $" (+{Format.Latency(Added(result, http, Node, rate) ?? 0)})",
                "on loopback a request takes tens of microseconds, so a proxy's fixed cost is a larger share than over a real network");
        }

        Row(text, "latency jitter above 500 req/s (node mode): p99 − p50", "grew noticeably",
            string.Join(", ", result.Options.Rates.OfType<double>().Select(rate => string.Create(Invariant, $"{rate:0}: {Format.Latency(Percentile(result, http, Node, rate, 99) - Percentile(result, http, Node, rate, 50))}"))),
            "a one-thread node proxy carries every instance's traffic, so bursts queue in it; compare the spread at each rate with the no-mesh table above, which the client and instances add on their own");
        Row(text, "L4 forwarding: node mode over sidecars (TCP, max throughput)", "+50% (Kmesh)",
            Gain(Throughput(result, tcp, Node), Throughput(result, tcp, Sidecar)) + " (vs our sidecars " + Gain(Throughput(result, tcp, Node), Throughput(result, tcp, OurSidecar)) + ")",
            "Kmesh forwards in the kernel and skips the user-space hop entirely; ours removes one of two user-space hops");
        Row(text, "L7 forwarding: node mode over sidecars (HTTP, max throughput)", "+60% (Kmesh)",
            Gain(Throughput(result, http, Node), Throughput(result, http, Sidecar)) + " (vs our sidecars " + Gain(Throughput(result, http, Node), Throughput(result, http, OurSidecar)) + ")",
            "as above; on two shared cores every proxy process also competes with the client and the instances for CPU");
        Row(text, "HTTP forwarding: node mode / industry sidecar", "5x (Kmesh)",
            Ratio(Throughput(result, http, Node), Throughput(result, http, Sidecar), "0.00x"),
            "Kmesh's 5x is against Envoy with Istio's filters; HAProxy is among the fastest user-space proxies");
        Row(text, "data-plane overhead (CPU per request, all proxies): reduction by node mode", "−70% (Kmesh)",
            Reduction(CpuPerThousand(result, http, Node, null), CpuPerThousand(result, http, Sidecar, null)) + " (vs our sidecars " + Reduction(CpuPerThousand(result, http, Node, null), CpuPerThousand(result, http, OurSidecar, null)) + ")",
            "two proxies handle each request in sidecar mode, one in node mode: the floor of the reduction is about half");
        Row(text, "latency one sidecar hop adds (100 req/s)", "2-3 ms",
            Format.Latency((Added(result, http, Sidecar, 100) ?? 0) / 2) + " (ours as sidecars " + Format.Latency((Added(result, http, OurSidecar, 100) ?? 0) / 2) + ")",
            "the published hop crosses pods, veths and Envoy with mTLS; here it is a loopback connection into a plain proxy");
    }

    private static void Row(StringBuilder text, string claim, string published, string measured, string why)
        => text.AppendLine(Invariant, $"| {claim} | {published} | {measured} | {why} |");

    private static string Headline(MeshResult result)
    {
        var http = CompareProtocol.Http;
        return string.Create(Invariant, $"node mode adds {Format.Latency(Added(result, http, Node, 100) ?? 0)} at 100 req/s, sidecars (HAProxy) {Format.Latency(Added(result, http, Sidecar, 100) ?? 0)}; max HTTP {Throughput(result, http, Node):0} vs {Throughput(result, http, Sidecar):0} req/s");
    }

    private static double Median(IEnumerable<double> values) => CompareReportWriter.Median(values);

    private static double Percentile(MeshResult result, CompareProtocol protocol, string arm, double? rate, double percentile)
        => Median(result.Of(protocol, arm, rate).Select(r => (double)r.Stats.Latency.ValueAt(percentile)));

    private static double Throughput(MeshResult result, CompareProtocol protocol, string arm)
        => Median(result.Of(protocol, arm, null).Select(r => r.Stats.RequestsPerSecond));

    private static double? Added(MeshResult result, CompareProtocol protocol, string arm, double? rate)
        => result.Of(protocol, arm, rate).Count == 0 || result.Of(protocol, None, rate).Count == 0 ? null : Percentile(result, protocol, arm, rate, 50) - Percentile(result, protocol, None, rate, 50);

    private static double? CpuPerThousand(MeshResult result, CompareProtocol protocol, string arm, double? rate)
    {
        var values = result.Of(protocol, arm, rate).Select(r => r.CpuMsPerThousand).OfType<double>().ToArray();
        return values.Length == 0 ? null : Median(values);
    }

    private static long Idle(MeshResult result, string arm)
        => result.Footprints.FirstOrDefault(f => f.Arm == arm && f.Protocol == result.Options.Protocols[0])?.IdleRssBytes ?? 0;

    private static string AddedLatency(MeshResult result, CompareProtocol protocol, string arm, double? rate)
    {
        if (Added(result, protocol, arm, rate) is not { } added)
        {
            return "";
        }

        return arm.StartsWith("sidecar", StringComparison.Ordinal) ? $"{Signed(added)} ({Signed(added / 2)}/hop)" : Signed(added);
    }

    private static string CpuCell(MeshResult result, CompareProtocol protocol, string arm, double? rate)
        => CpuPerThousand(result, protocol, arm, rate) is { } ms ? ms.ToString("0.0' ms'", Invariant) : "";

    private static string RssCell(MeshResult result, CompareProtocol protocol, string arm, double? rate)
    {
        var values = result.Of(protocol, arm, rate).Select(r => r.PeakRssBytes).OfType<long>().Select(v => (double)v).ToArray();
        return values.Length == 0 ? "" : Mib((long)Median(values));
    }

    /// <summary>A resource of one node proxy over one sidecar, each the arm's total divided by its proxies.</summary>
    private static string PerProxyRatio(MeshResult result, CompareProtocol protocol, double rate, IReadOnlyDictionary<string, int> proxies, Func<MeshRun, double?> measure)
    {
        double? PerProxy(string arm)
        {
            var values = result.Of(protocol, arm, rate).Select(measure).OfType<double>().ToArray();
            return values.Length == 0 || !proxies.TryGetValue(arm, out var count) ? null : Median(values) / count;
        }

        var node = PerProxy(Node);
        return $"{Percent(node, PerProxy(Sidecar))} of HAProxy's; {Percent(node, PerProxy(OurSidecar))} of our own sidecar's";
    }

    private static string Percent(double? part, double? whole) => part is { } p && whole is > 0 ? (p / whole.Value).ToString("0%", Invariant) : "";

    private static string Ratio(double? a, double? b, string format) => a is { } x && b is > 0 ? (x / b.Value).ToString(format, Invariant) : "";

    private static string Gain(double a, double b) => b > 0 && a > 0 ? ((a / b) - 1).ToString("+0%;-0%", Invariant) : "";

    private static string Reduction(double? node, double? sidecar) => node is { } n && sidecar is > 0 ? (-(1 - (n / sidecar.Value))).ToString("+0%;-0%", Invariant) : "";

    private static string Signed(double microseconds) => (microseconds < 0 ? "−" : "+") + Format.Latency(Math.Abs(microseconds));

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("0' MiB'", Invariant);

    private static string RateLabel(double? rate) => rate is { } r ? r.ToString("0' req/s'", Invariant) : "max";
}
