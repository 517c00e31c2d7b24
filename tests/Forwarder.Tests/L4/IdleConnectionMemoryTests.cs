using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp.Splicing;
using Xunit.Abstractions;

namespace Forwarder.Tests.L4;

/// <summary>
/// What an idle proxied connection keeps on the managed heap, in bytes (not time): thousands of
/// idle connections are a node proxy's normal state. Both ends run in a python3 peer, so the heap
/// measured is the proxy's alone.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class IdleConnectionMemoryTests(ITestOutputHelper output)
{
    private const int Connections = 1000;

    /// <summary>
    /// The epoll engine takes both sockets from their TCP connections; those must not have made
    /// pipes and a sender they never use (2.5 KiB a connection) nor a feature dictionary each
    /// (0.8 KiB), and the splicer holds no block while nothing moves. Nor does the pair keep the
    /// upstream's connection object, a SocketAsyncContext, endpoints nobody read, a lock in the
    /// client's tracker entry, the two Socket objects and their handles (the pair owns bare
    /// descriptors), or a state machine waiting for the splice to end, or its task (the splice's
    /// end does the bookkeeping). About 0.8 KiB is left (1.3 before the frames went, 1.7 before
    /// the sockets, 6.4 before the pipes): the client's connection, its tracker entry, the
    /// splice and its session.
    /// </summary>
    [Fact]
    public async Task IdleSplicedConnection_HoldsNoPipesAndNoBlock()
    {
        var perConnection = await MeasureIdleAsync("epoll");

        Assert.True(perConnection < 1.125 * 1024, $"{perConnection:F0} bytes per idle spliced connection");
    }

    /// <summary>The pipes engine waits for data with a zero-byte read: an idle connection holds pipes but no 64 KiB block.</summary>
    [Fact]
    public async Task IdlePipedConnection_HoldsNoBlock()
    {
        var perConnection = await MeasureIdleAsync("pipes");

        Assert.True(perConnection < 12 * 1024, $"{perConnection:F0} bytes per idle piped connection");
    }

    /// <summary>After the connections close, a reclaim gives the heap's freed memory back to the system.</summary>
    [Fact]
    public async Task Reclaim_AfterConnectionsClose_DecommitsWhatTheyTook()
    {
        await using var peers = await IdleConnectionPeers.StartAsync();
        await using var forwarder = await StartForwarderAsync("epoll", peers.BackendPort);
        var front = forwarder.EndPoint("front").Port;
        var reclaimer = forwarder.Service<MemoryReclaimer>();
        // Earlier tests in this process leave garbage, some of it waiting for finalizers: reclaim
        // twice around them, so the baseline is this proxy's and not their leftovers.
        await reclaimer.ReclaimAsync(CancellationToken.None);
        GC.WaitForPendingFinalizers();
        await reclaimer.ReclaimAsync(CancellationToken.None);
        var baseline = GC.GetGCMemoryInfo().TotalCommittedBytes;

        await peers.OpenAsync(Connections * 4, front);
        GC.Collect();
        var atPeak = GC.GetGCMemoryInfo().TotalCommittedBytes;
        await peers.CloseAllAsync();
        await Eventually.TrueAsync(() => forwarder.Service<ConnectionTracker>().Count == 0, "the proxy has closed every connection");
        var (_, after) = await reclaimer.ReclaimAsync(CancellationToken.None);

        output.WriteLine($"committed: baseline {baseline / 1024} KiB, {Connections * 4} idle {atPeak / 1024} KiB, after reclaim {after / 1024} KiB");
        Assert.True(atPeak - baseline > 4 * 1024 * 1024, "the connections took memory");
        Assert.True(after - baseline < (atPeak - baseline) / 2, $"after a reclaim {after - baseline} of {atPeak - baseline} bytes are still committed");
    }

    private async Task<double> MeasureIdleAsync(string engine)
    {
        await using var peers = await IdleConnectionPeers.StartAsync();
        await using var forwarder = await StartForwarderAsync(engine, peers.BackendPort);
        var front = forwarder.EndPoint("front").Port;

        // A first round warms up what every connection shares (code paths, pools, tables).
        await peers.OpenAsync(Connections, front);
        await peers.CloseAllAsync();
        await Eventually.TrueAsync(() => forwarder.Service<ConnectionTracker>().Count == 0, "the proxy has closed every connection");

        var before = GC.GetTotalMemory(forceFullCollection: true);
        await peers.OpenAsync(Connections, front);
        await Eventually.TrueAsync(() => forwarder.Service<ConnectionTracker>().Count == Connections, "the proxy tracks every connection");
        if (engine == "epoll")
        {
            // The backend holds every connection once the dials are done; each is spliced a
            // continuation later, and until then also holds its dial's objects.
            await Eventually.TrueAsync(() => forwarder.Service<SocketSplicer>().PairsSplicing == Connections, "every connection is spliced");
        }

        var held = GC.GetTotalMemory(forceFullCollection: true);
        await peers.CloseAllAsync();

        var perConnection = (held - before) / (double)Connections;
        output.WriteLine($"engine={engine}: {perConnection:F0} bytes of managed heap per idle connection");
        return perConnection;
    }

    private static Task<RunningForwarder> StartForwarderAsync(string engine, int backendPort) => RunningForwarder.StartAsync($$"""
        tcp: { engine: {{engine}} }
        listeners:
          - { name: front, listen: '127.0.0.1:0', protocol: tcp, service: back }
        services:
          back:
            endpoints: [ { address: '127.0.0.1:{{backendPort}}' } ]
        """);
}
