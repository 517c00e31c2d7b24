using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp;

public sealed class ConnectionBudgetTests : TcpListenerFixture
{
    [Fact]
    public async Task ConnectAsync_AtTheCap_FailsLocallyWithoutASocket_AndClosingFreesRoom()
    {
        var budget = new ConnectionBudget(maxConnections: 1);
        var dialer = new TcpConnectionFactory(Options, Pool, splicer: null, budget);
        await using var first = await dialer.ConnectAsync(Listener.EndPoint);
        await using var second = await dialer.ConnectAsync(Listener.EndPoint);
        Assert.Equal(2, budget.OpenSockets);

        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => dialer.ConnectAsync(Listener.EndPoint).AsTask());
        Assert.Equal(SocketError.TooManyOpenSockets, refused.SocketErrorCode);
        Assert.Contains("limits.maxConnections", refused.Message, StringComparison.Ordinal);
        Assert.Equal(1, budget.DialsRefused);
        Assert.Equal(2, budget.OpenSockets);

        await first.DisposeAsync();
        Assert.Equal(1, budget.OpenSockets);
        await using var third = await dialer.ConnectAsync(Listener.EndPoint);
        Assert.Equal(2, budget.OpenSockets);
    }

    [Fact]
    public async Task ConnectAsync_SocketTakenBySplicer_StaysCountedUntilTheTakerClosesIt()
    {
        var budget = new ConnectionBudget(maxConnections: 4);
        using var splicer = new SocketSplicer(threads: 1);
        var dialer = new TcpConnectionFactory(Options, Pool, splicer, budget);
        var connection = await dialer.ConnectAsync(Listener.EndPoint);
        var adopted = await EpollConnection.AdoptAsync(connection, splicer, Pool, 1 << 20);
        Assert.Equal(1, budget.OpenSockets);

        await adopted.DisposeAsync();
        Assert.Equal(0, budget.OpenSockets);
    }

    [Fact]
    public async Task ConnectAsync_SocketTakenBySplice_StaysCountedUntilThePairEnds()
    {
        var budget = new ConnectionBudget(maxConnections: 4);
        using var splicer = new SocketSplicer(threads: 1);
        var dialer = new TcpConnectionFactory(Options, Pool, splicer, budget);
        await using var upstream = await dialer.ConnectAsync(Listener.EndPoint);
        await using var server = (await Listener.AcceptAsync())!;
        using var clientListener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        clientListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        clientListener.Listen();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(clientListener.LocalEndPoint!);
        var clientSide = await clientListener.AcceptAsync();
        Assert.True(((TcpConnection)upstream).TryTakeSocket(out var upstreamSide));

        // The pair closes the dialled socket at once; its count goes only when the pair's own descriptor does.
        var spliced = splicer.Splice(clientSide, upstreamSide, new NoObserver());
        Assert.True(upstreamSide.SafeHandle.IsClosed);
        Assert.Equal(1, budget.OpenSockets);

        client.Shutdown(SocketShutdown.Send);
        var serverInput = server.Transport.Input;
        ReadResult read;
        do
        {
            read = await serverInput.ReadAsync().AsTask().WaitAsync(Timeout);
            serverInput.AdvanceTo(read.Buffer.End);
        }
        while (!read.IsCompleted);

        await server.Transport.Output.CompleteAsync();
        Assert.Equal(SpliceOutcome.Completed, await spliced.Completion.WaitAsync(Timeout));
        Assert.Equal(0, budget.OpenSockets);
        await upstream.DisposeAsync();
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

    private sealed class NoObserver : ISpliceObserver
    {
        public void Forwarded(bool toUpstream, int bytes)
        {
        }
    }
}
