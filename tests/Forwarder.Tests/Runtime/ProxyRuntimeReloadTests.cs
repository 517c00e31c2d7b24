using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

public sealed class ProxyRuntimeReloadTests
{
    private static string Config(string backend, params (string Name, string Listen)[] listeners) => $"""
        listeners:
        {string.Join("\n", listeners.Select(l => $"  - {{ name: {l.Name}, listen: '{l.Listen}', protocol: tcp, service: back }}"))}
        services:
          back:
            endpoints:
              - address: {backend}
        """;

    [Fact]
    public async Task Reload_AddsAndRemovesListeners_EstablishedConnectionsSurvive()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address, ("old", "127.0.0.1:0")));
        var oldEndPoint = forwarder.EndPoint("old");
        using var established = await SocketClient.ConnectAsync(oldEndPoint);
        await SocketClient.AssertEchoAsync(established, "before reload");

        // Traffic keeps flowing on the established connection while the reload happens.
        using var stop = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            var exchanges = 0;
            while (!stop.IsCancellationRequested)
            {
                await SocketClient.AssertEchoAsync(established, $"exchange {exchanges++}");
            }

            return exchanges;
        });

        Assert.True(await forwarder.ReloadAsync(Config(backend.Address, ("new", "127.0.0.1:0"))));
        using var fresh = await SocketClient.ConnectAsync(forwarder.EndPoint("new"));
        await SocketClient.AssertEchoAsync(fresh, "new listener");
        await stop.CancelAsync();
        Assert.True(await traffic > 0);

        await SocketClient.AssertEchoAsync(established, "after reload, on the removed listener");
        var refused = await Assert.ThrowsAsync<SocketException>(() => SocketClient.ConnectAsync(oldEndPoint));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        Assert.Equal(1, forwarder.Metrics.ReloadsSucceeded);
    }

    [Fact]
    public async Task Reload_ChangedEndpoints_ApplyToNewConnectionsOnly()
    {
        await using var first = TcpTestServer.Echo();
        await using var second = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(first.Address, ("front", "127.0.0.1:0")));
        using var before = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await SocketClient.AssertEchoAsync(before, "to the first backend");

        // Same name and listen address: the listener keeps its socket and switches service.
        Assert.True(await forwarder.ReloadAsync(Config(second.Address, ("front", "127.0.0.1:0"))));
        using var after = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await SocketClient.AssertEchoAsync(after, "to the second backend");
        await SocketClient.AssertEchoAsync(before, "still on the first backend");

        Assert.Equal(1, first.AcceptedCount);
        Assert.Equal(1, second.AcceptedCount);
    }

    [Fact]
    public async Task Reload_InvalidFile_KeepsServingAndReportsError()
    {
        await using var backend = TcpTestServer.Echo();
        var yaml = Config(backend.Address, ("front", "127.0.0.1:0"));
        await using var forwarder = await RunningForwarder.StartAsync(yaml);
        using var established = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));

        Assert.False(await forwarder.ReloadAsync(yaml.Replace("service: back", "service: missing", StringComparison.Ordinal)));

        var status = forwarder.Runtime.Status;
        Assert.False(status.Succeeded);
        var error = Assert.Single(status.Errors);
        Assert.Contains("forwarder.yaml:2:", error, StringComparison.Ordinal);
        Assert.Contains("listeners[0].service: no service named 'missing'", error, StringComparison.Ordinal);
        Assert.Equal(1, forwarder.Metrics.ReloadsFailed);
        await SocketClient.AssertEchoAsync(established, "established keeps working");
        using var fresh = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await SocketClient.AssertEchoAsync(fresh, "new connections too");
    }

    [Fact]
    public async Task Reload_PortTaken_RollsBackWholeConfig()
    {
        await using var backend = TcpTestServer.Echo();
        using var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        squatter.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        squatter.Listen();
        var taken = squatter.LocalEndPoint!.ToString()!;
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address, ("front", "127.0.0.1:0")));

        var ok = await forwarder.ReloadAsync(Config(backend.Address, ("extra", "127.0.0.1:0"), ("clash", taken)));

        Assert.False(ok);
        Assert.Contains($"listener 'clash' cannot listen on {taken}", Assert.Single(forwarder.Runtime.Status.Errors), StringComparison.Ordinal);
        Assert.Equal(["front"], forwarder.Runtime.BoundEndPoints.Keys);
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "old config still serving");
    }

    [Fact]
    public async Task FileWatcher_EditedFile_IsReloaded()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address, ("front", "127.0.0.1:0")));

        // Write a new file beside it and rename it over the old one, as editors and ConfigMaps do.
        var staged = forwarder.ConfigPath + ".new";
        await File.WriteAllTextAsync(staged, Config(backend.Address, ("front", "127.0.0.1:0"), ("second", "127.0.0.1:0")));
        File.Move(staged, forwarder.ConfigPath, overwrite: true);

        await Eventually.TrueAsync(() => forwarder.Runtime.BoundEndPoints.ContainsKey("second"), "the watcher reloads the renamed file");
        using var client = await SocketClient.ConnectAsync(forwarder.EndPoint("second"));
        await SocketClient.AssertEchoAsync(client, "via the listener the watcher added");
    }

    [Fact]
    public async Task FileWatcher_RewriteWithSameText_DoesNotReload()
    {
        await using var backend = TcpTestServer.Echo();
        var yaml = Config(backend.Address, ("front", "127.0.0.1:0"));
        await using var forwarder = await RunningForwarder.StartAsync(yaml);

        await File.WriteAllTextAsync(forwarder.ConfigPath, yaml);
        await File.AppendAllTextAsync(forwarder.ConfigPath, "\n# edited\n");

        await Eventually.TrueAsync(() => forwarder.Metrics.ReloadsSucceeded >= 1, "the edit is reloaded");
        Assert.Equal(1, forwarder.Metrics.ReloadsSucceeded);
        Assert.Equal(0, forwarder.Metrics.ReloadsFailed);
    }
}
