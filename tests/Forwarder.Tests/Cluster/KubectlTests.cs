using System.Diagnostics;

namespace Forwarder.Tests.Cluster;

/// <summary>A real client (Debian's kubectl) accepts the fake API server's payloads: the shapes the discovery tests replay are the API's.</summary>
public sealed class KubectlTests : IDisposable
{
    private readonly string _cache = Directory.CreateTempSubdirectory("forwarder-kubectl-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Fact]
    public async Task Kubectl_ListsTheFakesServicesAndEndpointSlices()
    {
        if (!File.Exists("/usr/bin/kubectl"))
        {
            Assert.Fail("kubectl is not installed (apt-get install kubernetes-client)");
        }

        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", "10.96.0.10", ("http", 80, 8080, "TCP")));
        api.Put(FakeKubeApiServer.Service("shop", "api", "10.96.0.11", ("grpc", 8080, 9090, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", 8080, ("10.1.0.1", "node-a", "zone-1", true), ("10.1.0.2", "node-b", "zone-2", false)));
        await api.StartAsync();

        var services = await KubectlAsync(api, "get", "services", "--all-namespaces");
        Assert.Contains("web", services, StringComparison.Ordinal);
        Assert.Contains("shop", services, StringComparison.Ordinal);

        var slices = await KubectlAsync(api, "get", "endpointslices", "--all-namespaces", "-o", "jsonpath={range .items[*]}{.metadata.name} {.endpoints[*].addresses[0]} {.endpoints[*].zone}{\"\\n\"}{end}");
        Assert.Equal("web-abc12 10.1.0.1 10.1.0.2 zone-1 zone-2", slices.Trim());

        var ports = await KubectlAsync(api, "get", "services", "-n", "default", "-o", "jsonpath={.items[*].spec.clusterIP} {.items[*].spec.ports[0].port}->{.items[*].spec.ports[0].targetPort}");
        Assert.Equal("10.96.0.10 80->8080", ports.Trim());
    }

    private async Task<string> KubectlAsync(FakeKubeApiServer api, params string[] arguments)
    {
        var start = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add($"--server={api.Url}");
        start.ArgumentList.Add($"--cache-dir={_cache}");
        start.ArgumentList.Add("--kubeconfig=/dev/null");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var kubectl = Process.Start(start)!;
        var output = kubectl.StandardOutput.ReadToEndAsync();
        var errors = kubectl.StandardError.ReadToEndAsync();
        await kubectl.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(kubectl.ExitCode == 0, $"kubectl {string.Join(' ', arguments)}: exit {kubectl.ExitCode}\n{await output}\n{await errors}");
        return await output;
    }
}
