using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>cluster</c> section: the Kubernetes API server to discover from and the cluster domain.</summary>
internal static class ClusterConfigReader
{
    private const string Section = "cluster";
    private const string Kubernetes = "cluster.kubernetes";

    public static ClusterConfig? Read(YamlFieldReader reader, YamlNode node, string configFile)
    {
        var fields = reader.Mapping(node, Section, "kubernetes", "domain");
        if (fields is null)
        {
            return null;
        }

        var domain = reader.String(fields, Section, "domain", required: false, node) ?? "cluster.local";
        if (!fields.TryGetValue("kubernetes", out var kubernetesNode))
        {
            reader.Error(node, Kubernetes, "is required: the API server to discover services from (kubernetes: {} for in-cluster)");
            return null;
        }

        var kubernetes = ReadKubernetes(reader, kubernetesNode, configFile);
        return kubernetes is null ? null : new ClusterConfig(kubernetes, domain);
    }

    private static KubernetesConfig? ReadKubernetes(YamlFieldReader reader, YamlNode node, string configFile)
    {
        var fields = node is YamlScalarNode { Value: null or "" }
            ? []
            : reader.Mapping(node, Kubernetes, "apiServer", "tokenFile", "caFile", "namespaces", "cacheFile");
        if (fields is null)
        {
            return null;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(configFile)) ?? Directory.GetCurrentDirectory();
        var apiServerText = reader.String(fields, Kubernetes, "apiServer", required: false, node);
        Uri? apiServer = null;
        if (apiServerText is not null
            && (!Uri.TryCreate(apiServerText, UriKind.Absolute, out apiServer) || apiServer.Scheme is not ("http" or "https") || apiServer.AbsolutePath != "/"))
        {
            reader.Error(fields["apiServer"], $"{Kubernetes}.apiServer", $"expected an http:// or https:// URL without a path such as https://10.0.0.1:6443, got '{apiServerText}'");
        }

        var tokenFile = reader.String(fields, Kubernetes, "tokenFile", required: false, node) ?? $"{KubernetesConfig.ServiceAccountFolder}/token";
        var caFile = reader.String(fields, Kubernetes, "caFile", required: false, node) ?? $"{KubernetesConfig.ServiceAccountFolder}/ca.crt";
        var cacheFile = reader.String(fields, Kubernetes, "cacheFile", required: false, node);
        return new KubernetesConfig(
            apiServer,
            Path.GetFullPath(tokenFile, folder),
            Path.GetFullPath(caFile, folder),
            ReadNamespaces(reader, fields),
            cacheFile is null ? null : Path.GetFullPath(cacheFile, folder));
    }

    private static List<string> ReadNamespaces(YamlFieldReader reader, Dictionary<string, YamlNode> fields)
    {
        const string Path = $"{Kubernetes}.namespaces";
        List<string> namespaces = [];
        if (!fields.TryGetValue("namespaces", out var node) || reader.Sequence(node, Path) is not { } sequence)
        {
            return namespaces;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            if (item is not YamlScalarNode { Value: { } name } || !ClusterServiceName.IsDnsLabel(name))
            {
                reader.Error(item, $"{Path}[{i}]", "expected a namespace name: lower-case letters, digits and '-'");
            }
            else if (namespaces.Contains(name))
            {
                reader.Error(item, $"{Path}[{i}]", $"'{name}' is listed twice");
            }
            else
            {
                namespaces.Add(name);
            }
        }

        return namespaces;
    }
}
