using Forwarder.Metrics;
using static Forwarder.Admin.PrometheusWriter;

namespace Forwarder.Admin;

/// <summary>Renders the node mesh's families of the Prometheus exposition: links and their streams per peer, hole punches, relays.</summary>
internal static class NodeMetricsWriter
{
    private static readonly (LinkPath Path, string Label)[] LinkPaths = [(LinkPath.DirectQuic, "direct-quic"), (LinkPath.DirectTcp, "direct-tcp"), (LinkPath.Relay, "relay"), (LinkPath.PunchedTcp, "punched-tcp"), (LinkPath.RelaySpliced, "relay-spliced")];
    private static readonly (LinkPath Path, string Label)[] PunchedPaths = [(LinkPath.DirectQuic, "direct-quic"), (LinkPath.PunchedTcp, "punched-tcp")];

    /// <summary>Writes the families, pausing after each peer or relay like <see cref="PrometheusWriter.Render"/>.</summary>
    public static IEnumerable<int> Render(MetricsText text, ForwarderMetrics metrics)
    {
        var peers = metrics.Peers.ToArray();
        Family(text, "forwarder_node_links_up", "gauge", "Links to (dialled) or from (accepted) the peer node that are up.");
        foreach (var p in peers)
        {
            Sample(text, "forwarder_node_links_up", $"peer=\"{p.Name}\"", p.LinksUp);
            yield return 0;
        }

        Family(text, "forwarder_node_link_opens_total", "counter", "Links to or from the peer that came up (ok), and links this node failed to open to it (failed).");
        foreach (var p in peers)
        {
            Sample(text, "forwarder_node_link_opens_total", $"peer=\"{p.Name}\",result=\"ok\"", p.LinksOpened);
            Sample(text, "forwarder_node_link_opens_total", $"peer=\"{p.Name}\",result=\"failed\"", p.LinkFailures);
            yield return 0;
        }

        Family(text, "forwarder_node_link_streams_total", "counter", "Connections carried to (out) or from (in) the peer, by path: a QUIC link (direct-quic), a TLS link over TCP (direct-tcp), a relay (relay), a TLS link over TCP opened through both NATs by simultaneous open (punched-tcp), or a TLS link a relay splices (relay-spliced).");
        foreach (var p in peers)
        {
            foreach (var (path, label) in LinkPaths)
            {
                Sample(text, "forwarder_node_link_streams_total", $"peer=\"{p.Name}\",direction=\"out\",path=\"{label}\"", p.StreamsOutOver(path));
                Sample(text, "forwarder_node_link_streams_total", $"peer=\"{p.Name}\",direction=\"in\",path=\"{label}\"", p.StreamsInOver(path));
            }

            yield return 0;
        }

        Family(text, "forwarder_node_punches_total", "counter", "Hole punches this node started towards the peer through a relay's introduction, by the link sought (a QUIC link over UDP: direct-quic; TCP by simultaneous open: punched-tcp) and outcome: the link came up (ok), or streams stay on the relay (failed).");
        foreach (var p in peers)
        {
            foreach (var (path, label) in PunchedPaths)
            {
                Sample(text, "forwarder_node_punches_total", $"peer=\"{p.Name}\",path=\"{label}\",result=\"ok\"", p.PunchesSucceeded(path));
                Sample(text, "forwarder_node_punches_total", $"peer=\"{p.Name}\",path=\"{label}\",result=\"failed\"", p.PunchesFailed(path));
            }

            yield return 0;
        }

        if (metrics.QuicLinkPort >= 0)
        {
            Family(text, "forwarder_node_quic_listening", "gauge", "1 while the node link port takes QUIC links over UDP; 0 when the UDP port could not be bound (TCP links and relays still work).");
            Sample(text, "forwarder_node_quic_listening", string.Empty, metrics.QuicLinkPort);
        }

        Family(text, "forwarder_node_links_refused_total", "counter", "Links peers opened that this node refused: no or a foreign certificate (certificate), a mesh certificate not a node's (role), a node not in node.peers (unlisted).");
        Sample(text, "forwarder_node_links_refused_total", "reason=\"certificate\"", metrics.LinksRefused(LinkRefusal.Certificate));
        Sample(text, "forwarder_node_links_refused_total", "reason=\"role\"", metrics.LinksRefused(LinkRefusal.Role));
        Sample(text, "forwarder_node_links_refused_total", "reason=\"unlisted\"", metrics.LinksRefused(LinkRefusal.Unlisted));

        Family(text, "forwarder_node_link_streams_refused_total", "counter", "Streams from the peer answered NotAllowed: the target is no endpoint of an exported service (not_exported), or it came through a relay from a node not in node.peers (unlisted).");
        foreach (var p in peers)
        {
            Sample(text, "forwarder_node_link_streams_refused_total", $"peer=\"{p.Name}\",reason=\"not_exported\"", p.StreamsRefused(StreamRefusal.NotExported));
            Sample(text, "forwarder_node_link_streams_refused_total", $"peer=\"{p.Name}\",reason=\"unlisted\"", p.StreamsRefused(StreamRefusal.Unlisted));
            yield return 0;
        }

        var relays = metrics.Relays.ToArray();
        Family(text, "forwarder_node_relay_up", "gauge", "1 while this node is registered with the relay.");
        foreach (var r in relays)
        {
            Sample(text, "forwarder_node_relay_up", $"relay=\"{r.Name}\"", r.Up);
            yield return 0;
        }

        Family(text, "forwarder_node_relay_registrations_total", "counter", "Registrations with the relay that succeeded (ok) and attempts that failed.");
        foreach (var r in relays)
        {
            Sample(text, "forwarder_node_relay_registrations_total", $"relay=\"{r.Name}\",result=\"ok\"", r.Registrations);
            Sample(text, "forwarder_node_relay_registrations_total", $"relay=\"{r.Name}\",result=\"failed\"", r.Failures);
            yield return 0;
        }

        Family(text, "forwarder_node_link_streams_active", "gauge", "Connections over links with the peer open now.");
        foreach (var p in peers)
        {
            Sample(text, "forwarder_node_link_streams_active", $"peer=\"{p.Name}\"", p.StreamsActive);
            yield return 0;
        }
    }
}
