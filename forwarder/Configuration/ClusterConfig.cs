namespace Forwarder.Configuration;

/// <summary>The <c>cluster</c> section: where services and endpoints are discovered besides the file.</summary>
/// <param name="Domain">The cluster's DNS domain (cluster.local).</param>
internal sealed record ClusterConfig(KubernetesConfig Kubernetes, string Domain);

/// <param name="ApiServer">The API server's URL; null for in-cluster (KUBERNETES_SERVICE_HOST and _PORT).</param>
/// <param name="Namespaces">The namespaces watched; empty for all.</param>
/// <param name="CacheFile">Where the last good cluster state is kept, to serve from when the API server is unreachable at start; null for none.</param>
internal sealed record KubernetesConfig(Uri? ApiServer, string TokenFile, string CaFile, IReadOnlyList<string> Namespaces, string? CacheFile)
{
    public const string ServiceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount";
}

/// <summary>
/// The file services and, with a cluster section, the discovered ones listeners may name before
/// they are discovered (NAMESPACE/NAME:PORT; file service names cannot hold '/' so the two never clash).
/// </summary>
internal sealed class ServiceCatalog(IReadOnlyDictionary<string, ServiceConfig> services, bool cluster)
{
    /// <summary>A file service, or (with a cluster section) a discovered name of the listener's kind: <c>/udp</c> ones for udp listeners only.</summary>
    public bool Knows(string name, bool udp = false)
        => services.ContainsKey(name) || (cluster && ClusterServiceName.IsValid(name) && ClusterServiceName.IsUdp(name) == udp);

    /// <summary>The file's service of that name; null for none (discovered services are not known until discovered).</summary>
    public ServiceConfig? InFile(string name) => services.GetValueOrDefault(name);

    public string Describe()
    {
        var known = services.Count == 0 ? "none are defined" : $"defined: {string.Join(", ", services.Keys.Order(StringComparer.Ordinal))}";
        return cluster ? $"{known}; discovered services are named NAMESPACE/NAME:PORT (NAMESPACE/NAME:PORT/udp for UDP ports)" : known;
    }
}

/// <summary>
/// The forwarder service name of a Kubernetes Service port: <c>NAMESPACE/NAME:PORT</c>, and
/// <c>NAMESPACE/NAME:PORT/udp</c> for a UDP port, so DNS's 53/TCP and 53/UDP are two services.
/// </summary>
internal static class ClusterServiceName
{
    private const string UdpSuffix = "/udp";

    public static string Of(string @namespace, string name, int port, string protocol = "TCP")
        => protocol == "UDP" ? $"{@namespace}/{name}:{port}{UdpSuffix}" : $"{@namespace}/{name}:{port}";

    public static bool IsUdp(string name) => name.EndsWith(UdpSuffix, StringComparison.Ordinal);

    public static bool IsValid(string name)
    {
        if (name.EndsWith(UdpSuffix, StringComparison.Ordinal))
        {
            name = name[..^UdpSuffix.Length];
        }

        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var colon = name.LastIndexOf(':');
        return slash > 0 && colon > slash + 1
            && IsDnsLabel(name.AsSpan(0, slash)) && IsDnsLabel(name.AsSpan(slash + 1, colon - slash - 1))
            && int.TryParse(name.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            && port is > 0 and <= 65535;
    }

    /// <summary>An RFC 1123 label, as Kubernetes namespace and Service names are.</summary>
    public static bool IsDnsLabel(ReadOnlySpan<char> text)
    {
        if (text.Length is 0 or > 63 || text[0] == '-' || text[^1] == '-')
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return false;
            }
        }

        return true;
    }
}
