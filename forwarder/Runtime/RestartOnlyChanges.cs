using Forwarder.Configuration;

namespace Forwarder.Runtime;

/// <summary>The differences between two configs that a reload cannot apply, as warnings to log and report.</summary>
internal static class RestartOnlyChanges
{
    public static List<string> Between(ForwarderConfig running, ForwarderConfig next)
    {
        List<string> warnings = [];
        if (running.Admin?.Listen != next.Admin?.Listen)
        {
            warnings.Add("admin.listen changed; the admin endpoint moves at the next restart");
        }

        if (!SameNode(running.Node, next.Node))
        {
            warnings.Add("node changed (name, listen, files, transport or peers); links follow it at the next restart");
        }

        if (running.Tcp with { DirectSend = next.Tcp.DirectSend } != next.Tcp)
        {
            warnings.Add("tcp socket and buffer settings changed; they apply at the next restart");
        }

        if (!SameCluster(running.Cluster, next.Cluster))
        {
            warnings.Add("cluster changed; discovery follows it at the next restart");
        }

        if (running.Dns is null || next.Dns is null ? running.Dns != next.Dns : !running.Dns.SameAs(next.Dns))
        {
            warnings.Add("dns changed; the DNS server follows it at the next restart");
        }

        return warnings;
    }

    private static bool SameCluster(ClusterConfig? a, ClusterConfig? b)
        => a is null || b is null
            ? a is null && b is null
            : a.Domain == b.Domain && a.Kubernetes with { Namespaces = [] } == b.Kubernetes with { Namespaces = [] } && a.Kubernetes.Namespaces.SequenceEqual(b.Kubernetes.Namespaces);

    private static bool SameNode(NodeConfig? a, NodeConfig? b)
        => a is null || b is null
            ? a is null && b is null
            : a.SameAs(b);
}
