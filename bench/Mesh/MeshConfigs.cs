using System.Net;
using System.Text;

namespace Forwarder.Bench.Mesh;

/// <summary>Proxy configs for the mesh arms: one listener balancing round robin over some endpoints, one thread per proxy.</summary>
internal static class MeshConfigs
{
    public static string Forwarder(IPEndPoint listen, IReadOnlyList<IPEndPoint> endpoints, bool http)
    {
        var text = new StringBuilder();
        text.AppendLine("tcp:");
        text.AppendLine("  ioThreads: 1");
        text.AppendLine("listeners:");
        text.AppendLine("  - name: mesh");
        text.AppendLine($"    listen: {listen}");
        if (http)
        {
            text.AppendLine("    protocol: http");
            text.AppendLine("    routes:");
            text.AppendLine("      - service: app");
        }
        else
        {
            text.AppendLine("    service: app");
        }

        text.AppendLine("services:");
        text.AppendLine("  app:");
        text.AppendLine("    endpoints:");
        foreach (var endpoint in endpoints)
        {
            text.AppendLine($"      - address: {endpoint}");
        }

        return text.ToString();
    }

    public static string Haproxy(IPEndPoint listen, IReadOnlyList<IPEndPoint> endpoints, bool http)
    {
        var text = new StringBuilder();
        text.AppendLine("global");
        text.AppendLine("    nbthread 1");
        text.AppendLine("    maxconn 8000");
        text.AppendLine();
        text.AppendLine("defaults");
        text.AppendLine($"    mode {(http ? "http" : "tcp")}");
        text.AppendLine("    timeout connect 5s");
        text.AppendLine("    timeout client 60s");
        text.AppendLine("    timeout server 60s");
        if (http)
        {
            text.AppendLine("    option http-keep-alive");
            text.AppendLine("    http-reuse always");
        }

        text.AppendLine();
        text.AppendLine("frontend mesh");
        text.AppendLine($"    bind {listen}");
        text.AppendLine("    default_backend app");
        text.AppendLine();
        text.AppendLine("backend app");
        text.AppendLine("    balance roundrobin");
        for (var i = 0; i < endpoints.Count; i++)
        {
            text.AppendLine($"    server app{i + 1} {endpoints[i]}");
        }

        return text.ToString();
    }
}
