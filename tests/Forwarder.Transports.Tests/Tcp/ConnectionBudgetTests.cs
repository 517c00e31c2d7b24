using System.Net;
using System.Net.Sockets;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Tcp;

public sealed class ConnectionBudgetTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly TcpTransportOptions _options = new();
    private readonly PinnedBlockMemoryPool _pool = new(4096);
    private IConnectionListener _listener = null!;

    public async Task InitializeAsync()
        => _listener = await new TcpListenerFactory(_options, _pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        await _listener.DisposeAsync();
        _pool.Dispose();
    }

    [Fact]
    public async Task ConnectAsync_AtTheCap_FailsLocallyWithoutASocket_AndClosingFreesRoom()
    {
        var budget = new ConnectionBudget(maxConnections: 1);
        var dialer = new TcpConnectionFactory(_options, _pool, splicer: null, budget);
        await using var first = await dialer.ConnectAsync(_listener.EndPoint);
        await using var second = await dialer.ConnectAsync(_listener.EndPoint);
        Assert.Equal(2, budget.OpenSockets);

        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => dialer.ConnectAsync(_listener.EndPoint).AsTask());
        Assert.Equal(SocketError.TooManyOpenSockets, refused.SocketErrorCode);
        Assert.Contains("limits.maxConnections", refused.Message, StringComparison.Ordinal);
        Assert.Equal(1, budget.DialsRefused);
        Assert.Equal(2, budget.OpenSockets);

        await first.DisposeAsync();
        Assert.Equal(1, budget.OpenSockets);
        await using var third = await dialer.ConnectAsync(_listener.EndPoint);
        Assert.Equal(2, budget.OpenSockets);
    }

    [Fact]
    public async Task ConnectAsync_SocketTakenBySplicer_StaysCountedUntilTheTakerClosesIt()
    {
        var budget = new ConnectionBudget(maxConnections: 4);
        using var splicer = new SocketSplicer(threads: 1);
        var dialer = new TcpConnectionFactory(_options, _pool, splicer, budget);
        var connection = await dialer.ConnectAsync(_listener.EndPoint);
        var adopted = await EpollConnection.AdoptAsync(connection, splicer, _pool, 1 << 20);
        Assert.Equal(1, budget.OpenSockets);

        await adopted.DisposeAsync();
        Assert.Equal(0, budget.OpenSockets);
    }

    [Fact]
    public async Task WaitToAcceptAsync_Full_PausesUntilASocketIsReleased()
    {
        var budget = new ConnectionBudget(maxConnections: 1);
        var pauses = 0;
        await budget.WaitToAcceptAsync(() => pauses++, CancellationToken.None);
        budget.Accepted();
        Assert.True(budget.TryDial());

        var waiting = budget.WaitToAcceptAsync(() => pauses++, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        Assert.Equal(1, pauses);
        budget.Release();
        Assert.False(waiting.IsCompleted);
        budget.Release();
        await waiting.WaitAsync(Timeout);
        Assert.Equal(1, budget.AcceptPauses);
    }

    [Fact]
    public async Task WaitToAcceptAsync_LimitRaised_WakesTheWaitingListener()
    {
        var budget = new ConnectionBudget(maxConnections: 1);
        budget.Accepted();
        budget.Accepted();
        var waiting = budget.WaitToAcceptAsync(() => { }, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);

        budget.MaxConnections = 2;
        await waiting.WaitAsync(Timeout);
    }
}
