using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp.Splicing;

public sealed class SocketSplicerTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly List<Socket> _sockets = [];
    private readonly Counter _counter = new();

    public SocketSplicerTests()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen();
    }

    [Fact]
    public async Task Splice_MovesBytesBothWays_AndEndsWhenBothSidesFinish()
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, server, spliced) = await SpliceAsync(splicer);

        await SendAsync(client, "request");
        Assert.Equal("request", await ReceiveAsync(server, 7));
        await SendAsync(server, "response");
        server.Shutdown(SocketShutdown.Send);
        Assert.Equal("response", await ReceiveToEndAsync(client));
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal(SpliceOutcome.Completed, await spliced.Completion.WaitAsync(Timeout));
        Assert.Equal(string.Empty, await ReceiveToEndAsync(server));
        Assert.Equal((7, 8), (_counter.ToUpstream, _counter.ToClient));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Splice_TakesTheConnectionsFromTheSockets_AndAResetClosesBothWithRst(bool upstreamFails)
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, clientSide) = await ConnectedPairAsync();
        var (upstreamSide, server) = await ConnectedPairAsync();
        var spliced = splicer.Splice(clientSide, upstreamSide, _counter);

        // The pair keeps descriptors of its own: the sockets are closed at once, the connections are not.
        Assert.True(clientSide.SafeHandle.IsClosed, "the client's socket outlived the start of the splice");
        Assert.True(upstreamSide.SafeHandle.IsClosed, "the upstream's socket outlived the start of the splice");
        await SendAsync(client, "ping");
        Assert.Equal("ping", await ReceiveAsync(server, 4));

        // One peer fails: the pair resets both sides, and the other peer sees the RST only once
        // the pair's descriptor for it is closed.
        var (failing, other) = upstreamFails ? (server, client) : (client, server);
        failing.LingerState = new LingerOption(true, 0);
        failing.Close();

        Assert.Equal(SpliceOutcome.Reset, await spliced.Completion.WaitAsync(Timeout));
        var reset = await Assert.ThrowsAsync<SocketException>(() => ReceiveToEndAsync(other));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
    }

    [Fact]
    public async Task Splice_OfASocketClosedAlready_Throws_AndClosesTheOther()
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, clientSide) = await ConnectedPairAsync();
        var (upstreamSide, _) = await ConnectedPairAsync();
        upstreamSide.Dispose();

        // Its old number may be another socket's by now: it must not be taken over.
        Assert.Throws<ObjectDisposedException>(() => splicer.Splice(clientSide, upstreamSide, _counter));
        Assert.True(clientSide.SafeHandle.IsClosed);
        Assert.Equal(string.Empty, await ReceiveToEndAsync(client));
    }

    [Fact]
    public async Task Abort_EndsThePair_PeersSeeTheEnd()
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, server, spliced) = await SpliceAsync(splicer);

        spliced.Abort();

        Assert.Equal(SpliceOutcome.Completed, await spliced.Completion.WaitAsync(Timeout));
        Assert.Equal(string.Empty, await ReceiveToEndAsync(client));
        Assert.Equal(string.Empty, await ReceiveToEndAsync(server));
    }

    /// <summary>
    /// An owner told of the end needs no task (none is made until asked for); one asked for only
    /// after the end is completed with the outcome.
    /// </summary>
    [Fact]
    public async Task Observer_IsToldOfTheEnd_AndACompletionAskedForAfterwardsHasTheOutcome()
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, clientSide) = await ConnectedPairAsync();
        var (upstreamSide, server) = await ConnectedPairAsync();
        var spliced = splicer.Splice(clientSide, upstreamSide, _counter);

        server.LingerState = new LingerOption(true, 0);
        server.Close();

        Assert.Equal(SpliceOutcome.Reset, await _counter.Ended.Task.WaitAsync(Timeout));
        Assert.Equal(SpliceOutcome.Reset, await spliced.Completion.WaitAsync(Timeout));
        var reset = await Assert.ThrowsAsync<SocketException>(() => ReceiveToEndAsync(client));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
    }

    [Fact]
    public async Task Dispose_WithLivePair_ResetsIt()
    {
        var splicer = new SocketSplicer(threads: 1);
        var (_, _, spliced) = await SpliceAsync(splicer);

        splicer.Dispose();

        Assert.Equal(SpliceOutcome.Reset, await spliced.Completion.WaitAsync(Timeout));
    }

    [Fact]
    public async Task IdlePair_HoldsNoBlock_AndTrimLetsTheThreadsBlocksGo()
    {
        using var splicer = new SocketSplicer(threads: 1);
        var (client, server, spliced) = await SpliceAsync(splicer);

        // Bytes both ways, then the pair idles: its blocks went back when they were sent.
        await SendAsync(client, "request");
        Assert.Equal("request", await ReceiveAsync(server, 7));
        await SendAsync(server, "response");
        Assert.Equal("response", await ReceiveAsync(client, 8));
        Assert.Equal(0, splicer.BlocksOutstanding);

        Assert.True(await splicer.TrimAsync().WaitAsync(Timeout) >= 1, "the thread kept the block it read into");
        Assert.Equal(0, await splicer.TrimAsync().WaitAsync(Timeout));

        // Still forwarding after the trim, with a new block.
        await SendAsync(client, "again");
        Assert.Equal("again", await ReceiveAsync(server, 5));
        spliced.Abort();
        await spliced.Completion.WaitAsync(Timeout);
    }

    /// <summary>
    /// While the primary thread is contended, half of its idle pairs move to the spare and new
    /// pairs alternate between the two; once it is not, the spare hands them all back. Bytes flow
    /// both ways after each move, and an abort asked of a pair after it moved still ends it.
    /// </summary>
    [Fact]
    public async Task Spillover_MovesHalfThePairsToTheSpareWhileContended_AndBackAfter()
    {
        using var splicer = new SocketSplicer(threads: 1, spillover: true);
        var pairs = new List<(Socket Client, Socket Server, SplicedConnection Spliced)>();
        for (var i = 0; i < 4; i++)
        {
            pairs.Add(await SpliceAsync(splicer));
        }

        await ExchangeAsync(pairs, "before");
        Assert.Equal(0, splicer.PairsOnSpare);

        splicer.ForceContention(true);
        await WaitUntilAsync(() => splicer.PairsOnSpare == 2, "half the pairs to move to the spare");
        Assert.Equal(4, splicer.PairsSplicing);
        await ExchangeAsync(pairs, "spread");

        // New pairs alternate: of two more, one goes to each thread.
        pairs.Add(await SpliceAsync(splicer));
        pairs.Add(await SpliceAsync(splicer));
        await ExchangeAsync(pairs, "more");
        Assert.Equal(3, splicer.PairsOnSpare);

        // Only the primary is poked: it pokes the spare, idle in epoll_wait, as contention ends.
        // Pairs in transit between the threads count on neither, so wait for all six on the primary.
        splicer.ForceContention(false);
        await WaitUntilAsync(() => splicer.PairsOnSpare == 0 && splicer.PairsSplicing == 6, "the spare to hand its pairs back");
        await ExchangeAsync(pairs, "back");

        foreach (var (client, server, spliced) in pairs)
        {
            spliced.Abort();
            Assert.Equal(SpliceOutcome.Completed, await spliced.Completion.WaitAsync(Timeout));
            Assert.Equal(string.Empty, await ReceiveToEndAsync(client));
            Assert.Equal(string.Empty, await ReceiveToEndAsync(server));
        }

        Assert.Equal(0, splicer.PairsSplicing);
        Assert.Equal(0, splicer.BlocksOutstanding);
    }

    /// <summary>
    /// More idle pairs than one check moves: the rest move at the following checks, each way,
    /// though no pair gets traffic to wake either thread.
    /// </summary>
    [Fact]
    public async Task Spillover_MovesMoreThanOneChecksShare_OverTheFollowingChecks()
    {
        using var splicer = new SocketSplicer(threads: 1, spillover: true);
        var count = (2 * Spillover.MaxMovesPerCheck) + 8;
        var pairs = new List<(Socket Client, Socket Server, SplicedConnection Spliced)>();
        for (var i = 0; i < count; i++)
        {
            pairs.Add(await SpliceAsync(splicer));
        }

        splicer.ForceContention(true);
        await WaitUntilAsync(() => splicer.PairsOnSpare == count / 2, "half the pairs to move to the spare");
        splicer.ForceContention(false);
        await WaitUntilAsync(() => splicer.PairsOnSpare == 0 && splicer.PairsSplicing == count, "the spare to hand its pairs back");
        await ExchangeAsync(pairs[^4..], "after");
    }

    /// <summary>
    /// With <paramref name="handingBack"/>, contention ends just before the splicer stops, so the
    /// spare hands pairs (and redirected aborts) to the primary while both stop: none may be lost,
    /// and nothing may touch a descriptor the primary already closed.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Spillover_DisposeWithPairsOnTheSpare_ResetsThemAll(bool handingBack)
    {
        var splicer = new SocketSplicer(threads: 1, spillover: true);
        var pairs = new List<SplicedConnection>();
        for (var i = 0; i < 8; i++)
        {
            pairs.Add((await SpliceAsync(splicer)).Spliced);
        }

        splicer.ForceContention(true);
        await WaitUntilAsync(() => splicer.PairsOnSpare == 4, "half the pairs to move to the spare");
        if (handingBack)
        {
            splicer.ForceContention(false);
            pairs[^1].Abort();
        }

        splicer.Dispose();

        // The aborted pair ends either way, by its abort or by the stop, whichever came first.
        for (var i = 0; i < pairs.Count; i++)
        {
            var outcome = await pairs[i].Completion.WaitAsync(Timeout);
            Assert.True(outcome == SpliceOutcome.Reset || (handingBack && i == pairs.Count - 1), $"pair {i} ended {outcome}");
        }
    }

    [Fact]
    public void ForceContention_WithoutASpare_Throws()
    {
        using var splicer = new SocketSplicer(threads: 1);
        Assert.Throws<InvalidOperationException>(() => splicer.ForceContention(true));
    }

    /// <summary>Each pair carries a message each way, checked at the far end.</summary>
    private static async Task ExchangeAsync(List<(Socket Client, Socket Server, SplicedConnection Spliced)> pairs, string text)
    {
        foreach (var (client, server, _) in pairs)
        {
            await SendAsync(client, text + "?");
            await SendAsync(server, text + "!");
        }

        foreach (var (client, server, _) in pairs)
        {
            Assert.Equal(text + "?", await ReceiveAsync(server, text.Length + 1));
            Assert.Equal(text + "!", await ReceiveAsync(client, text.Length + 1));
        }
    }

    /// <summary>Polls a state only the splicer's threads change, up to the generous test deadline.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }

    public void Dispose()
    {
        _sockets.ForEach(s => s.Dispose());
        _listener.Dispose();
    }

    /// <summary>A client and a server socket, joined by a pair of their accepted ends spliced on <paramref name="splicer"/>.</summary>
    private async Task<(Socket Client, Socket Server, SplicedConnection Spliced)> SpliceAsync(SocketSplicer splicer)
    {
        var (client, clientSide) = await ConnectedPairAsync();
        var (upstreamSide, server) = await ConnectedPairAsync();
        return (client, server, splicer.Splice(clientSide, upstreamSide, _counter));
    }

    private async Task<(Socket Connector, Socket Accepted)> ConnectedPairAsync()
    {
        var connector = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        connector.Connect(_listener.LocalEndPoint!);
        var accepted = await _listener.AcceptAsync();
        _sockets.Add(connector);
        _sockets.Add(accepted);
        return (connector, accepted);
    }

    private static async Task SendAsync(Socket socket, string text)
        => await socket.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);

    private static async Task<string> ReceiveAsync(Socket socket, int count)
    {
        using var cancel = new CancellationTokenSource(Timeout);
        var buffer = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancel.Token);
            Assert.NotEqual(0, read);
            filled += read;
        }

        return Encoding.ASCII.GetString(buffer);
    }

    private static async Task<string> ReceiveToEndAsync(Socket socket)
    {
        using var cancel = new CancellationTokenSource(Timeout);
        var text = new StringBuilder();
        var buffer = new byte[1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return text.ToString();
    }

    private sealed class Counter : ISpliceObserver
    {
        public TaskCompletionSource<SpliceOutcome> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int ToUpstream { get; private set; }

        public int ToClient { get; private set; }

        public void Forwarded(bool toUpstream, int bytes)
        {
            if (toUpstream)
            {
                ToUpstream += bytes;
            }
            else
            {
                ToClient += bytes;
            }
        }

        void ISpliceObserver.Ended(SpliceOutcome outcome) => Ended.TrySetResult(outcome);
    }
}
