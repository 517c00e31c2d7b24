using System.Diagnostics;
using System.Globalization;
using Forwarder.Configuration;
using Forwarder.Tests.Configuration;
using Forwarder.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Tests.Deploy;

/// <summary>
/// The shipped deployment files agree with the forwarder they run: the ConfigMap's config is valid,
/// probes reach the admin endpoint it configures, and the stop timeouts leave room for the drain.
/// No cluster or init system runs here, so these are the checks that can fail offline.
/// </summary>
public sealed class DeployManifestsTests : IDisposable
{
    private static readonly string DeployDirectory = Path.Combine(ConfigLoaderTests.RepositoryRoot(), "deploy");
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-deploy-").FullName;

    [Fact]
    public async Task ConfigMap_HoldsAConfigTheExecutableAccepts()
    {
        var path = Path.Combine(_directory, "forwarder.yaml");
        await File.WriteAllTextAsync(path, ConfigMapText());

        var (exitCode, output, errors) = await ForwarderProcess.RunAsync("--config", path, "--check");

        Assert.True(exitCode == 0, $"--check exited {exitCode}: {output}{errors}");
    }

    [Fact]
    public void DaemonSet_ProbesTheAdminEndpointOnTheNodesLoopback()
    {
        var admin = ConfigMapConfig().Admin;
        Assert.NotNull(admin);
        var container = Container();

        foreach (var (probe, path) in new[] { ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz") })
        {
            var httpGet = Map(Map(container, probe), "httpGet");
            Assert.Equal(path, Text(httpGet, "path"));
            Assert.Equal(admin.EndPoint.Port, int.Parse(Text(httpGet, "port"), CultureInfo.InvariantCulture));
            Assert.Equal(admin.EndPoint.Address.ToString(), Text(httpGet, "host"));
        }

        Assert.Equal("true", Text(PodSpec(), "hostNetwork"));
    }

    [Fact]
    public void DaemonSet_GracePeriod_CoversPreStopShutdownDelayAndDrain()
    {
        var config = ConfigMapConfig();
        var preStop = int.Parse(Text(Map(Map(Map(Container(), "lifecycle"), "preStop"), "sleep"), "seconds"), CultureInfo.InvariantCulture);
        var grace = int.Parse(Text(PodSpec(), "terminationGracePeriodSeconds"), CultureInfo.InvariantCulture);

        var needed = TimeSpan.FromSeconds(preStop) + config.ShutdownDelay + config.DrainTimeout + TimeSpan.FromSeconds(10);
        Assert.True(TimeSpan.FromSeconds(grace) >= needed, $"terminationGracePeriodSeconds {grace} < {needed.TotalSeconds} s");
    }

    [Fact]
    public void SystemdUnit_RaisesTheFileLimit_AndWaitsForTheDrain()
    {
        var unit = File.ReadAllLines(Path.Combine(DeployDirectory, "systemd", "forwarder.service"))
            .Where(line => line.Contains('=', StringComparison.Ordinal) && !line.StartsWith('#'))
            .Select(line => line.Split('=', 2))
            .GroupBy(pair => pair[0], pair => pair[1])
            .ToDictionary(group => group.Key, group => group.Last());
        var config = ConfigMapConfig();

        Assert.True(int.Parse(unit["LimitNOFILE"], CultureInfo.InvariantCulture) >= 65536);
        Assert.Equal("SIGTERM", unit["KillSignal"]);
        var stop = TimeSpan.FromSeconds(int.Parse(unit["TimeoutStopSec"].TrimEnd('s'), CultureInfo.InvariantCulture));
        Assert.True(stop > config.ShutdownDelay + config.DrainTimeout, $"TimeoutStopSec {stop} leaves no room for the drain");
        Assert.Contains("--check", unit["ExecStartPre"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task SystemdUnit_PassesSystemdAnalyzeVerify_WhereSystemdIsInstalled()
    {
        if (!File.Exists("/usr/bin/systemd-analyze"))
        {
            Assert.Fail("systemd-analyze is not installed (apt-get install systemd)");
        }

        // verify checks that the binaries named exist: point them at the test build's executable.
        var executable = Path.Combine(AppContext.BaseDirectory, "forwarder");
        var unit = (await File.ReadAllTextAsync(Path.Combine(DeployDirectory, "systemd", "forwarder.service")))
            .Replace("/usr/local/bin/forwarder", executable, StringComparison.Ordinal);
        var path = Path.Combine(_directory, "forwarder.service");
        await File.WriteAllTextAsync(path, unit);

        var start = new ProcessStartInfo("systemd-analyze") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("verify");
        start.ArgumentList.Add(path);
        using var verify = Process.Start(start)!;
        var output = await verify.StandardOutput.ReadToEndAsync() + await verify.StandardError.ReadToEndAsync();
        await verify.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(verify.ExitCode == 0 && output.Trim().Length == 0, $"systemd-analyze verify: exit {verify.ExitCode}\n{output}");
    }

    [Fact]
    public void DaemonSet_RunsAsAServiceAccount_BoundToReadOnlyDiscovery()
    {
        var account = Document("ServiceAccount");
        var name = Text(Map(account, "metadata"), "name");
        var ns = Text(Map(account, "metadata"), "namespace");
        Assert.Equal(name, Text(PodSpec(), "serviceAccountName"));
        Assert.Equal(ns, Text(Map(Document("DaemonSet"), "metadata"), "namespace"));

        var role = Document("ClusterRole");
        var rules = ((YamlSequenceNode)role["rules"]).Children.Cast<YamlMappingNode>()
            .SelectMany(rule => Strings(rule, "apiGroups").SelectMany(group => Strings(rule, "resources").Select(resource => (group, resource, verbs: Strings(rule, "verbs")))))
            .ToDictionary(r => $"{r.group}/{r.resource}", r => r.verbs.Order().ToArray());
        Assert.Equal(["/services", "discovery.k8s.io/endpointslices"], rules.Keys.Order());
        Assert.All(rules.Values, verbs => Assert.Equal(["get", "list", "watch"], verbs));

        var binding = Document("ClusterRoleBinding");
        Assert.Equal(Text(Map(role, "metadata"), "name"), Text(Map(binding, "roleRef"), "name"));
        Assert.Equal("ClusterRole", Text(Map(binding, "roleRef"), "kind"));
        var subject = (YamlMappingNode)Assert.Single(((YamlSequenceNode)binding["subjects"]).Children);
        Assert.Equal(("ServiceAccount", name, ns), (Text(subject, "kind"), Text(subject, "name"), Text(subject, "namespace")));
    }

    [Fact]
    public void DaemonSet_CanIntercept_AndKnowsItsNode()
    {
        var security = Map(Container(), "securityContext");
        var capabilities = Map(security, "capabilities");
        Assert.Equal(["ALL"], Strings(capabilities, "drop"));
        Assert.Contains("NET_ADMIN", Strings(capabilities, "add"));
        Assert.Contains("NET_RAW", Strings(capabilities, "add"));

        // Added capabilities are effective only for uid 0 (Kubernetes has no ambient capabilities).
        Assert.Equal("0", Text(security, "runAsUser"));
        Assert.Equal("false", Text(security, "allowPrivilegeEscalation"));

        var nodeName = ((YamlSequenceNode)Container()["env"]).Children.Cast<YamlMappingNode>().Single(e => Text(e, "name") == LocalityConfig.NodeVariable);
        Assert.Equal("spec.nodeName", Text(Map(Map(nodeName, "valueFrom"), "fieldRef"), "fieldPath"));
    }

    [Fact]
    public void ConfigMap_DiscoversFromTheCluster_AndBalancesByLocality()
    {
        var config = ConfigMapConfig();

        Assert.NotNull(config.Cluster);
        Assert.Null(config.Cluster.Kubernetes.ApiServer);
        var cache = config.Cluster.Kubernetes.CacheFile;
        Assert.NotNull(cache);
        var mount = ((YamlSequenceNode)Container()["volumeMounts"]).Children.Cast<YamlMappingNode>().Single(m => cache.StartsWith(Text(m, "mountPath") + "/", StringComparison.Ordinal));
        var volume = ((YamlSequenceNode)PodSpec()["volumes"]).Children.Cast<YamlMappingNode>().Single(v => Text(v, "name") == Text(mount, "name"));
        Assert.True(volume.Children.ContainsKey("hostPath"), "the cluster cache must outlive the pod");

        // The node comes from NODE_NAME at run time, not from the file.
        Assert.Equal([LocalityScope.Node, LocalityScope.Zone], config.Locality?.Default?.Levels);
        Assert.NotNull(config.Services["web"].Lb.Locality);
    }

    /// <summary>
    /// `kubectl apply --dry-run=client` needs an API server even with --validate=false (it maps
    /// kinds through discovery; validation downloads OpenAPI), so it cannot run here. What works
    /// offline is kubectl decoding every document into its typed API objects, which `set env
    /// --local --list` does: a wrong type (a string port, a scalar where a list goes) fails it.
    /// </summary>
    [Fact]
    public async Task Manifests_DecodeIntoKubectlsTypedObjects_Offline()
    {
        if (!File.Exists("/usr/bin/kubectl"))
        {
            Assert.Fail("kubectl is not installed (apt-get install kubernetes-client)");
        }

        var start = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "set", "env", "--local", "--list", "-f", Path.Combine(DeployDirectory, "kubernetes", "forwarder.yaml") })
        {
            start.ArgumentList.Add(argument);
        }

        // No cluster: a kubeconfig that does not exist, so nothing is dialled.
        start.Environment["KUBECONFIG"] = Path.Combine(_directory, "no-kubeconfig");
        using var kubectl = Process.Start(start)!;
        var output = await kubectl.StandardOutput.ReadToEndAsync();
        var errors = await kubectl.StandardError.ReadToEndAsync();
        await kubectl.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(kubectl.ExitCode == 0, $"kubectl exited {kubectl.ExitCode}: {errors}");
        Assert.Contains("NODE_NAME from field path spec.nodeName", output, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string[] Strings(YamlMappingNode node, string key) => [.. ((YamlSequenceNode)node[key]).Children.Select(c => ((YamlScalarNode)c).Value!)];

    private static ForwarderConfig ConfigMapConfig() => ConfigLoader.Parse(ConfigMapText(), "deploy/kubernetes/forwarder.yaml#forwarder.yaml");

    private static string ConfigMapText() => Text(Map(Document("ConfigMap"), "data"), "forwarder.yaml");

    private static YamlMappingNode PodSpec() => Map(Map(Map(Document("DaemonSet"), "spec"), "template"), "spec");

    private static YamlMappingNode Container() => (YamlMappingNode)Assert.Single(((YamlSequenceNode)PodSpec()["containers"]).Children);

    private static YamlMappingNode Document(string kind)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(DeployDirectory, "kubernetes", "forwarder.yaml")))
        {
            stream.Load(reader);
        }

        return Assert.Single(stream.Documents.Select(d => (YamlMappingNode)d.RootNode), d => Text(d, "kind") == kind);
    }

    private static YamlMappingNode Map(YamlMappingNode node, string key) => (YamlMappingNode)node[key];

    private static string Text(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value!;
}
