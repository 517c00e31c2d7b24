using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

/// <summary>limits.maxConnections: listeners pause before accept at the cap and resume as connections close.</summary>
public sealed class ConnectionLimitTests
{
    private static string Config(string backend, int maxConnections) => $"""
        limits: {"{"} maxConnections: {maxConnections} {"}"}
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
        services:
          back:
            endpoints: [ {"{"} address: '{backend}' {"}"} ]
        """;

    [Fact]
    public async Task Accept_AtTheCap_WaitsInTheBacklogUntilAConnectionCloses()
    {
        await using var echo = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(echo.Address, maxConnections: 1));
        var budget = forwarder.Runtime.Budget;
        var first = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        await SocketClient.AssertEchoAsync(first, "first");
        Assert.Equal(2, budget.OpenSockets);

        // The kernel completes the handshake; the forwarder leaves it in the backlog.
        using var second = await SocketClient.ConnectAsync(forwarder.EndPoint("front"));
        var echoed = SocketClient.AssertEchoAsync(second, "second");
        await Eventually.TrueAsync(() => budget.AcceptPauses >= 1, "the listener pauses at the cap");
        Assert.Equal(1, forwarder.Metrics.Listener("front").Total);
        Assert.False(echoed.IsCompleted);

        first.Dispose();
        await echoed;
        Assert.Equal(2, forwarder.Metrics.Listener("front").Total);
    }

    [Fact]
    public async Task Reload_ChangedMaxConnections_AppliesToTheRunningBudget()
    {
        await using var echo = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(echo.Address, maxConnections: 1));
        Assert.Equal(1, forwarder.Runtime.Budget.MaxConnections);

        Assert.True(await forwarder.ReloadAsync(Config(echo.Address, maxConnections: 3)));
        Assert.Equal(3, forwarder.Runtime.Budget.MaxConnections);
    }
}
