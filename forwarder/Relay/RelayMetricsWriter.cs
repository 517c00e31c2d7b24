using System.Buffers;
using System.Globalization;
using System.Text;
using Forwarder.Admin;
using static Forwarder.Admin.PrometheusWriter;

namespace Forwarder.Relay;

/// <summary>The relay's /metrics in the Prometheus text format.</summary>
internal static class RelayMetricsWriter
{
    public static string Write(RelayRegistry registry)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var text = new MetricsText(buffer);
        var nodes = registry.Nodes.ToArray();
        Family(text, "forwarder_relay_nodes_registered", "gauge", "Nodes registered with this relay now.");
        Sample(text, "forwarder_relay_nodes_registered", string.Empty, nodes.Count(n => n.Session is not null));

        Family(text, "forwarder_relay_registrations_total", "counter", "Registrations accepted (ok), and connections refused at TLS (certificate) or for asking another node's name (name).");
        Sample(text, "forwarder_relay_registrations_total", "result=\"ok\"", registry.Registrations);
        Sample(text, "forwarder_relay_registrations_total", "result=\"certificate\"", registry.RefusedHandshakes);
        Sample(text, "forwarder_relay_registrations_total", "result=\"name\"", registry.RefusedNames);

        Family(text, "forwarder_relay_accept_failures_total", "counter", "Accepts on the listen port that failed (out of file descriptors or memory); the port pauses 250 ms after each.");
        Sample(text, "forwarder_relay_accept_failures_total", string.Empty, registry.AcceptFailures);

        Family(text, "forwarder_relay_node_up", "gauge", "1 while the node is registered.");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_node_up", Label(n), n.Session is null ? 0 : 1);
        }

        Family(text, "forwarder_relay_streams_total", "counter", "Streams the node asked the relay for: relayed, or refused (its limit, an unknown node, the far node's refusal).");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_streams_total", $"{Label(n)},result=\"relayed\"", n.StreamsOpened);
            Sample(text, "forwarder_relay_streams_total", $"{Label(n)},result=\"refused\"", n.StreamsRefused);
        }

        Family(text, "forwarder_relay_streams_active", "gauge", "Streams the node opened through the relay that are open now.");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_streams_active", Label(n), n.StreamsActive);
        }

        Family(text, "forwarder_relay_bytes_total", "counter", "Bytes relayed from the node (from) and to it (to).");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_bytes_total", $"{Label(n)},direction=\"from\"", n.BytesFrom);
            Sample(text, "forwarder_relay_bytes_total", $"{Label(n)},direction=\"to\"", n.BytesTo);
        }

        Family(text, "forwarder_relay_spliced_links_total", "counter", "Links the node asked for that the relay spliced (both halves presented their tickets).");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_spliced_links_total", Label(n), n.Splices);
        }

        Family(text, "forwarder_relay_spliced_links_active", "gauge", "Links the node asked for that the relay splices now (their bytes count in forwarder_relay_bytes_total).");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_spliced_links_active", Label(n), n.SplicesActive);
        }

        Family(text, "forwarder_relay_splice_tickets_failed_total", "counter", "Splice-port connections refused for their ticket (refused: forged, used, void or none) and rendezvous that expired with a half missing (expired).");
        Sample(text, "forwarder_relay_splice_tickets_failed_total", "reason=\"refused\"", registry.TicketsRefused);
        Sample(text, "forwarder_relay_splice_tickets_failed_total", "reason=\"expired\"", registry.TicketsExpired);

        Family(text, "forwarder_relay_spliced_links_timed_out_total", "counter", "Spliced links the relay closed: idle (nothing crossed for relay.spliceIdleTimeout) or half_closed (one side's FIN unanswered for relay.spliceHalfCloseTimeout).");
        Sample(text, "forwarder_relay_spliced_links_timed_out_total", "reason=\"idle\"", registry.SplicesIdleClosed);
        Sample(text, "forwarder_relay_spliced_links_timed_out_total", "reason=\"half_closed\"", registry.SplicesHalfClosedClosed);

        Family(text, "forwarder_relay_tcp_rendezvous_unnamed_total", "counter", "TCP rendezvous connections for an issued token closed because its node did not ask for the address within 5 s.");
        Sample(text, "forwarder_relay_tcp_rendezvous_unnamed_total", string.Empty, registry.TcpHoldsUnnamed);

        Family(text, "forwarder_relay_rendezvous_tokens_refused_total", "counter", "Hole-punching tokens that bound no address: not issued by this relay to a node (or expired, or answered) (unknown), or an issued one from a second address (rebound).");
        foreach (var (protocol, tokens) in new[] { ("udp", registry.UdpTokens), ("tcp", registry.TcpTokens) })
        {
            Sample(text, "forwarder_relay_rendezvous_tokens_refused_total", $"protocol=\"{protocol}\",reason=\"unknown\"", tokens?.RefusedUnknown ?? 0);
            Sample(text, "forwarder_relay_rendezvous_tokens_refused_total", $"protocol=\"{protocol}\",reason=\"rebound\"", tokens?.RefusedRebound ?? 0);
        }

        Family(text, "forwarder_relay_introductions_limited_total", "counter", "Hole-punching introductions the node asked for that were refused for a limit: the relay's of 10 a second per node (relay, event 810) or the far node's of answers at once (far_node, its event 758).");
        foreach (var n in nodes)
        {
            Sample(text, "forwarder_relay_introductions_limited_total", $"{Label(n)},by=\"relay\"", n.IntroductionsLimited);
            Sample(text, "forwarder_relay_introductions_limited_total", $"{Label(n)},by=\"far_node\"", n.IntroductionsFarLimited);
        }

        Family(text, "forwarder_relay_throttled_seconds_total", "counter", "Time the node's traffic was held back by its bandwidth limit.");
        foreach (var n in nodes)
        {
            text.Append("forwarder_relay_throttled_seconds_total{").Append(Label(n)).Append("} ")
                .Append(n.Throttled.TotalSeconds.ToString("0.######", CultureInfo.InvariantCulture)).Append('\n');
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string Label(RelayNode node) => $"node=\"{node.Name}\"";
}
