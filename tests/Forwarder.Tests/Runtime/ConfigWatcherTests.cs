using System.Runtime.InteropServices;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

public sealed partial class ConfigWatcherTests
{
    private static string Config(string backend, params string[] listeners) => $"""
        listeners:
        {string.Join("\n", listeners.Select(l => $"  - {{ name: {l}, listen: '127.0.0.1:0', protocol: tcp, service: back }}"))}
        services:
          back:
            endpoints:
              - address: {backend}
        """;

    [Fact]
    public async Task ConfigMapSwap_NewDataSymlinkRenamedOverOld_IsReloaded()
    {
        await using var backend = TcpTestServer.Echo();
        var root = Directory.CreateTempSubdirectory("forwarder-configmap-").FullName;
        var first = WriteVersion(root, "..2026_12_05_16_00_00.000000001", Config(backend.Address, "front"));
        File.CreateSymbolicLink(Path.Combine(root, "..data"), first);
        File.CreateSymbolicLink(Path.Combine(root, "config.yaml"), Path.Combine("..data", "config.yaml"));
        await using var forwarder = await RunningForwarder.StartOnAsync(root, Path.Combine(root, "config.yaml"));

        SwapData(root, WriteVersion(root, "..2026_12_05_16_01_00.000000002", Config(backend.Address, "front", "second")));
        Directory.Delete(Path.Combine(root, first), recursive: true);

        await Eventually.TrueAsync(() => forwarder.Runtime.BoundEndPoints.ContainsKey("second"), "the watcher reloads after ..data is swapped");
        using (var client = await SocketClient.ConnectAsync(forwarder.EndPoint("second")))
        {
            await SocketClient.AssertEchoAsync(client, "via the listener the ConfigMap update added");
        }

        // The first version's directory is gone, as the kubelet leaves it; the next update still lands.
        SwapData(root, WriteVersion(root, "..2026_12_05_16_02_00.000000003", Config(backend.Address, "front", "third")));

        await Eventually.TrueAsync(() => forwarder.Runtime.BoundEndPoints.ContainsKey("third"), "the watcher reloads the second update");
        Assert.False(forwarder.Runtime.BoundEndPoints.ContainsKey("second"));

        // The new listener serves before the reload is counted: that waits for the removed one to stop.
        await Eventually.TrueAsync(() => forwarder.Metrics.ReloadsSucceeded == 2, "the second reload is counted");
        Assert.Equal(0, forwarder.Metrics.ReloadsFailed);
    }

    [Fact]
    public async Task SymlinkToAnotherDirectory_TargetEditedInPlace_IsReloaded()
    {
        await using var backend = TcpTestServer.Echo();
        var root = Directory.CreateTempSubdirectory("forwarder-symlink-").FullName;
        var linkDirectory = Directory.CreateDirectory(Path.Combine(root, "etc")).FullName;
        var target = Path.Combine(Directory.CreateDirectory(Path.Combine(root, "srv")).FullName, "real.yaml");
        await File.WriteAllTextAsync(target, Config(backend.Address, "front"));
        var link = Path.Combine(linkDirectory, "config.yaml");
        File.CreateSymbolicLink(link, target);
        await using var forwarder = await RunningForwarder.StartOnAsync(root, link);

        // Re-aimed at a new file, the way config managers switch versions: an event in the link's directory.
        var next = Path.Combine(Path.GetDirectoryName(target)!, "real-2.yaml");
        await File.WriteAllTextAsync(next, Config(backend.Address, "front", "second"));
        File.CreateSymbolicLink(link + ".tmp", next);
        Assert.Equal(0, Rename(link + ".tmp", link));
        await Eventually.TrueAsync(() => forwarder.Runtime.BoundEndPoints.ContainsKey("second"), "the watcher reloads the re-aimed link");

        // Then edited where it lives: nothing happens in the link's directory.
        await File.WriteAllTextAsync(next, Config(backend.Address, "front", "third"));

        await Eventually.TrueAsync(() => forwarder.Runtime.BoundEndPoints.ContainsKey("third"), "the watcher reloads the link's target edited in place");
        Assert.Equal(0, forwarder.Metrics.ReloadsFailed);
    }

    /// <summary>A timestamped directory holding one version of the ConfigMap's files; returns its name.</summary>
    private static string WriteVersion(string root, string name, string yaml)
    {
        Directory.CreateDirectory(Path.Combine(root, name));
        File.WriteAllText(Path.Combine(root, name, "config.yaml"), yaml);
        return name;
    }

    /// <summary>What the kubelet does: a ..data_tmp symlink to the new version, renamed over ..data in one step.</summary>
    private static void SwapData(string root, string version)
    {
        var staged = Path.Combine(root, "..data_tmp");
        File.CreateSymbolicLink(staged, version);
        Assert.Equal(0, Rename(staged, Path.Combine(root, "..data")));
    }

    [LibraryImport("libc", EntryPoint = "rename", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Rename(string from, string to);
}
