using System.Net.Sockets;
using Forwarder.Tests.Configuration;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Cli;

public sealed class ForwarderCliTests : IDisposable
{
    private const int SigTerm = 15;
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-cli-").FullName;

    [Fact]
    public async Task Help_DocumentsEveryOption()
    {
        var (exitCode, output, _) = await ForwarderProcess.RunAsync("--help");

        Assert.Equal(0, exitCode);
        Assert.All(new[] { "--config", "--check", "--log-level", "--log-format" }, option => Assert.Contains(option, output, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Check_ValidConfig_ExitsZero()
    {
        var (exitCode, output, _) = await ForwarderProcess.RunAsync("--config", Path.Combine(ConfigLoaderTests.RepositoryRoot(), "examples", "quickstart.yaml"), "--check");

        Assert.Equal(0, exitCode);
        Assert.Contains("quickstart.yaml: OK (2 listeners, 1 services)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_InvalidConfig_ExitsTwoWithFileLineAndField()
    {
        var path = Write("bad.yaml", "listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n    service: nope\n");

        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("--config", path, "--check");

        Assert.Equal(2, exitCode);
        Assert.Contains($"{path}:4:14: listeners[0].service: no service named 'nope' (none are defined)", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_InvalidConfig_RefusesToStart()
    {
        var path = Write("bad.yaml", "listeners: nothing\n");

        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("--config", path);

        Assert.Equal(2, exitCode);
        Assert.Contains($"{path}:1:12: listeners: expected a list", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_AdminPortInUse_ExitsThreeNamingTheAddress()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var admin = taken.LocalEndpoint.ToString();
        var path = Write("admin.yaml", $"admin: {{ listen: '{admin}' }}\nlisteners:\n  - {{ name: front, listen: '127.0.0.1:0', protocol: echo }}\n");

        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("--config", path);

        Assert.Equal(3, exitCode);
        Assert.Contains($"{path}: admin.listen {admin}: cannot listen: ", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_NestedFortyThousandDeep_ExitsTwoNamingTheLine()
    {
        // 120 KB that used to overflow the stack while the tree was built: exit 134, no message.
        var path = Write("deep.yaml", "listeners: []\nnested: " + new string('[', 40_000) + new string(']', 40_000) + "\n");

        var (exitCode, _, errors) = await ForwarderProcess.RunAsync("--config", path, "--check");

        Assert.Equal(2, exitCode);
        Assert.Contains($"{path}:2:72: collections nest deeper than 64 levels here", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reload_NestedFortyThousandDeep_IsRejected_AndTheRunningConfigServesOn()
    {
        await using var backend = TcpTestServer.Echo();
        var path = Write("running.yaml", $"listeners:\n  - {{ name: front, listen: '127.0.0.1:0', service: back }}\nservices:\n  back:\n    endpoints: [ {{ address: '{backend.Address}' }} ]\n");
        using var forwarder = ForwarderProcess.Start("--config", path);
        var front = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, await forwarder.ListenerPortAsync("front"));

        await File.WriteAllTextAsync(path, "listeners: []\nnested: " + new string('[', 40_000) + new string(']', 40_000) + "\n");
        await forwarder.WaitForOutputAsync($"{path}:2:72: collections nest deeper than 64 levels here");

        Assert.Contains($"Reload of {path} rejected; the running config stays in effect", forwarder.Output, StringComparison.Ordinal);
        using var client = await SocketClient.ConnectAsync(front);
        await SocketClient.AssertEchoAsync(client, "still forwarding");
        Assert.False(forwarder.HasExited);
    }

    [Fact]
    public async Task SigTerm_StopsAccepting_DrainsEstablished_ThenExits()
    {
        await using var backend = TcpTestServer.Echo();
        var path = Write("drain.yaml", $"drainTimeout: 60s\nlisteners:\n  - {{ name: front, listen: '127.0.0.1:0', service: back }}\nservices:\n  back:\n    endpoints: [ {{ address: '{backend.Address}' }} ]\n");
        using var forwarder = ForwarderProcess.Start("--config", path);
        var port = await forwarder.ListenerPortAsync("front");
        var front = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port);
        using var established = await SocketClient.ConnectAsync(front);
        await SocketClient.AssertEchoAsync(established, "before SIGTERM");

        forwarder.Signal(SigTerm);
        await Eventually.TrueAsync(async () => await IsRefusedAsync(front), "the listener stops accepting");
        await SocketClient.AssertEchoAsync(established, "during the drain");
        Assert.False(forwarder.HasExited);

        established.Shutdown(SocketShutdown.Send);
        Assert.Empty(await SocketClient.ReceiveToEndAsync(established));
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, forwarder.ExitCode);
        Assert.Contains("All connections drained", forwarder.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigTerm_DrainDeadline_ClosesLingeringConnections_AndExitsZero()
    {
        // Longer than the 2 s after which System.CommandLine used to end the process with 143.
        await using var backend = TcpTestServer.Echo();
        var path = Write("deadline.yaml", $"drainTimeout: 3s\nlisteners:\n  - {{ name: front, listen: '127.0.0.1:0', service: back }}\nservices:\n  back:\n    endpoints: [ {{ address: '{backend.Address}' }} ]\n");
        using var forwarder = ForwarderProcess.Start("--config", path);
        var port = await forwarder.ListenerPortAsync("front");
        using var lingering = await SocketClient.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
        await SocketClient.AssertEchoAsync(lingering, "then I stay idle");

        forwarder.Signal(SigTerm);
        await forwarder.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, forwarder.ExitCode);
        Assert.Contains("Drain deadline reached; aborting 1 connections", forwarder.Output, StringComparison.Ordinal);
        Assert.Empty(await SocketClient.ReceiveToEndAsync(lingering));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string name, string yaml)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private static async Task<bool> IsRefusedAsync(System.Net.IPEndPoint endPoint)
    {
        try
        {
            using var probe = await SocketClient.ConnectAsync(endPoint);
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
        {
            // Reset: the probe's handshake completed in the backlog just as the listener closed,
            // which dropped it. Either way the listener no longer accepts.
            return true;
        }
    }
}
