using System.Net.Sockets;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Mux;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Relay;

/// <content>
/// The far node's token places under one asker's flood of introductions, with nodes played by
/// this test over their sessions: the asker gets two of them, the rest of its introductions are
/// refused as limited by the far node, and the far node still answers a third node and punches
/// itself.
/// </content>
public sealed partial class RelayServerTests
{
    // The far node keeps the flooder's introductions unanswered (as a far node slow to answer
    // does): each holds a token place of the far node until its answer, up to the relay's 30 s.
    [Fact]
    public async Task AFloodingAsker_TakesTwoOfTheFarNodesPlaces_AndTheFarNodeStillPunchesWithAThirdNode()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var (b, bLink) = await DialAndRegisterAsync(relay, "edge-b");
        var (c, cLink) = await DialAndRegisterAsync(relay, "edge-c");
        var holds = new List<Socket>();
        async Task HoldTokenAsync(string token)
        {
            var hold = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, token)!);
            lock (holds)
            {
                holds.Add(hold);
            }
        }

        var release = new TaskCompletionSource<TunnelStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        var keptUnanswered = 0;
        await using (aLink)
        await using (a)
        await using (bLink)
        await using (b)
        await using (cLink)
        await using (c)
        {
            try
            {
                var bAnswering = AnswerEachAsync(b, async request =>
                {
                    if (request.Node == "edge-a")
                    {
                        Interlocked.Increment(ref keptUnanswered);
                        return await release.Task;
                    }

                    await HoldTokenAsync(Introduced(request).Token);
                    return TunnelStatus.Connected;
                });
                var cAnswering = AnswerEachAsync(c, async request =>
                {
                    await HoldTokenAsync(Introduced(request).Token);
                    return TunnelStatus.Connected;
                });

                // Ten introductions (the asker's whole second), each asked once the last one's
                // token is out, so the asker's own places never run short.
                var flood = new List<Task<(TunnelStatus? Status, string? Far)>>();
                for (var i = 0; i < 10; i++)
                {
                    var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    flood.Add(AskTcpPunchAsync(a, "edge-b", async token =>
                    {
                        await HoldTokenAsync(token);
                        sent.TrySetResult();
                    }));
                    await Task.WhenAny(sent.Task, flood[^1]);
                }

                // Counted, not "answered": past the relay's 30 s the two kept ones are answered too (Unreachable).
                int Refused() => flood.Count(t => t.IsCompletedSuccessfully && t.Result.Status == TunnelStatus.Limited);
                await Eventually.TrueAsync(
                    () => Refused() == 8 && Volatile.Read(ref keptUnanswered) == 2,
                    () => $"{Refused()} of the flood refused as limited, {Volatile.Read(ref keptUnanswered)} introductions kept by the far node (want 8 and 2)");
                Assert.Equal((8L, 0L), (relay.Registry.Node("edge-a").IntroductionsFarLimited, relay.Registry.Node("edge-a").IntroductionsLimited));

                // A third node is introduced to the far node, and the far node to it, as if nobody flooded.
                var (toB, farB) = await AskTcpPunchAsync(c, "edge-b", HoldTokenAsync);
                var (toC, farC) = await AskTcpPunchAsync(b, "edge-c", HoldTokenAsync);
                Assert.Equal((TunnelStatus.Connected, TunnelStatus.Connected), (toB, toC));
                Assert.NotNull(farB);
                Assert.NotNull(farC);
                Assert.Equal((0L, 0L), (relay.Registry.Node("edge-c").IntroductionsFarLimited, relay.Registry.Node("edge-b").IntroductionsFarLimited));

                using (var http = new HttpClient())
                {
                    var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
                    Assert.Contains("forwarder_relay_introductions_limited_total{node=\"edge-a\",by=\"far_node\"} 8\n", metrics, StringComparison.Ordinal);
                }

                // The far node answers the two at last: their places are free again.
                release.SetResult(TunnelStatus.Unreachable);
                var asked = await Task.WhenAll(flood);
                Assert.Equal(2, asked.Count(r => r.Status == TunnelStatus.Unreachable));
                await Eventually.TrueAsync(() => relay.TcpTokens.Outstanding == 0, "every token place is free once its introduction is over");

                await b.DisposeAsync();
                await c.DisposeAsync();
                await Task.WhenAll(bAnswering, cAnswering);
            }
            finally
            {
                release.TrySetResult(TunnelStatus.Unreachable);
                lock (holds)
                {
                    holds.ForEach(h => h.Dispose());
                }
            }
        }
    }

    /// <summary>Plays a far node answering each introduction on its own, with the status <paramref name="answer"/> gives, until the session ends.</summary>
    private static async Task AnswerEachAsync(YamuxSession session, Func<TunnelRequest, Task<TunnelStatus>> answer)
    {
        var answering = new List<Task>();
        try
        {
            while (await session.AcceptStreamAsync(CancellationToken.None) is { } stream)
            {
                answering.Add(AnswerOneAsync(stream, answer));
            }
        }
        catch (Exception ex) when (ex is YamuxSessionClosedException or ObjectDisposedException or IOException or OperationCanceledException)
        {
            // The test ended the session.
        }

        await Task.WhenAll(answering);
    }

    private static async Task AnswerOneAsync(YamuxStream stream, Func<TunnelRequest, Task<TunnelStatus>> answer)
    {
        try
        {
            await using (stream)
            {
                var request = await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, CancellationToken.None);
                TunnelHandshake.WriteStatus(stream.Transport.Output, await answer(request!.Value));
                await stream.Transport.Output.FlushAsync();
            }
        }
        catch (Exception ex) when (ex is YamuxSessionClosedException or ObjectDisposedException or IOException or OperationCanceledException)
        {
            // The session ended before the answer.
        }
    }
}
