using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp;

namespace Forwarder.Tests.Relay;

/// <content>
/// What connections to the splice port, which anyone can reach, may cost: trickling hellos and
/// running the relay out of file descriptors leave real nodes their places.
/// </content>
public sealed partial class RelaySpliceTests
{
    // A slowloris on the splice port, which anyone can reach: a hundred connections trickling
    // their hellos a byte every 2 s (and coming back when closed) hold no thread and no place a
    // real node needs, and each is closed 5 s after its accept however it trickles (a deadline per
    // read would keep each 40 s).
    [Fact]
    public async Task TricklingHellos_HoldNoPlaceARealNodeNeeds_AndAreClosedOnTime()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");
        using var stop = new CancellationTokenSource();
        var longest = TimeSpan.Zero;
        var closedCount = 0;
        var trickling = Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var socket = await SocketClient.ConnectAsync(relay.SpliceEndPoint!);
                var opened = System.Diagnostics.Stopwatch.StartNew();
                var closed = socket.ReceiveAsync(new byte[64], SocketFlags.None);
                try
                {
                    while (!closed.IsCompleted && !stop.IsCancellationRequested)
                    {
                        await socket.SendAsync("F"u8.ToArray(), SocketFlags.None);
                        await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(2), stop.Token));
                    }
                }
                catch (SocketException)
                {
                    // Closed under a send.
                }

                if (!stop.IsCancellationRequested)
                {
                    lock (stop)
                    {
                        longest = opened.Elapsed > longest ? opened.Elapsed : longest;
                        closedCount++;
                    }
                }
            }
        })));

        try
        {
            await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a", [relay]);
            await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
            await WaitRegisteredAsync(relay, nodeA, nodeB);
            await WaitSplicedAsync(nodeA);
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, "spliced beside a hundred slow hellos");
            Assert.True(nodeA.Metrics.Peer("edge-b").StreamsOutOver(LinkPath.RelaySpliced) >= 1, "the stream took the spliced link");
            await Eventually.TrueAsync(() => Volatile.Read(ref closedCount) >= 100, "every trickler was closed at least once");
        }
        finally
        {
            await stop.CancelAsync();
            await trickling.WaitAsync(TimeSpan.FromSeconds(60));
        }

        lock (stop)
        {
            Assert.True(longest < TimeSpan.FromSeconds(15), $"a trickling hello was held {longest.TotalSeconds:0.0} s though its ticket was due 5 s after its accept");
        }
    }

    // The real relay started under a limit of 256 descriptors (prlimit; lowering the limit of a
    // running process can leave the runtime without one it needs): three hundred silent
    // connections to the splice port run it out of descriptors with connections still waiting in
    // the backlog. The poll would find the listener ready at once
    // after each failed accept and spin a core; the relay backs off, logs once, and says when it
    // accepts again (the silent connections are closed 5 s after their accept).
    [Fact]
    public async Task OutOfDescriptors_TheSpliceAcceptLoopBacksOff_AndAcceptsAgain()
    {
        var path = Path.Combine(_mesh.Directory, "relay-fd.yaml");
        await File.WriteAllTextAsync(path, $"""
            relay:
              name: relay-1
              listen: '127.0.0.1:0'
              splicePort: 0
              certificate: {Path.Combine(_mesh.Directory, "relay-1.pem")}
              key: {Path.Combine(_mesh.Directory, "relay-1.key")}
              ca: {Path.Combine(_mesh.Directory, "ca.pem")}
            """);
        using var relay = ForwarderProcess.StartWithFileLimit(256, "relay", "--config", path);
        await relay.WaitForOutputAsync("splicing links on");
        var splicePort = new IPEndPoint(IPAddress.Loopback, int.Parse(System.Text.RegularExpressions.Regex.Match(relay.Output, @"splicing links on 127\.0\.0\.1:(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

        var silent = new List<Socket>();
        try
        {
            for (var i = 0; i < 300; i++)
            {
                silent.Add(await SocketClient.ConnectAsync(splicePort));
            }

            // Two seconds with connections in the backlog the relay cannot take.
            var before = CpuTime(relay.Id);
            var measured = System.Diagnostics.Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(2));
            var busy = CpuTime(relay.Id) - before;
            Assert.True(busy < measured.Elapsed * 0.25, $"the relay used {busy.TotalSeconds:0.00} s of CPU in {measured.Elapsed.TotalSeconds:0.00} s out of descriptors");
            await relay.WaitForOutputAsync("cannot accept (TooManyOpenSockets");
            await relay.WaitForOutputAsync("accepts connections again");

            // Once the first hellos time out the relay takes more of the backlog and may run out
            // again: the one starvation this test drives is the one before it said it accepts again.
            var output = relay.Output;
            var recovered = output.IndexOf("accepts connections again", StringComparison.Ordinal);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(output[..recovered], "cannot accept"));
        }
        finally
        {
            silent.ForEach(s => s.Dispose());
        }

        Assert.False(relay.HasExited, relay.Errors);
    }

    /// <summary>User plus system CPU time of process <paramref name="pid"/> so far.</summary>
    private static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

        // utime and stime, fields 14 and 15 of stat (11 and 12 after the name), in clock ticks of 1/100 s.
        var ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }
}
