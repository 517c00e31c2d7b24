using Forwarder.Transports.Mux;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>
/// When a stream gives the peer its window back: once the application has consumed half of it
/// (the spec's and HashiCorp's rule), never once the peer's FIN is seen (even when the FIN comes
/// in the same batch as the data the application consumed inline), and after our own FIN only
/// once the peer is out of window (HashiCorp's yamux forgets a stream once both FINs are out and
/// warns of any update for it).
/// </summary>
public sealed class YamuxWindowUpdateTests
{
    private const int Half = YamuxOptions.SpecInitialWindow / 2;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task WindowUpdate_DataThenFinInOneBatch_NeverFollowsTheFin()
    {
        await using var peer = new YamuxTestPeer(sessionIsClient: false);
        var stream = await OpenFromPeerAsync(peer, 1);

        // The application waits for data, so it consumes it inline, before the reader reaches the FIN.
        var reading = YamuxSessionTests.ReadToEndAsync(stream);
        await peer.SendAsync(YamuxTestPeer.Data(1, Half + 40_000), YamuxTestPeer.Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Fin, 1, 0));
        Assert.Equal(Half + 40_000, (await reading.WaitAsync(Timeout)).Length);
        await stream.Transport.Output.CompleteAsync();

        var frames = await peer.ReadUntilAsync(frame => frame.StreamId == 1 && (frame.Flags & YamuxFlags.Fin) != 0);
        Assert.DoesNotContain(frames, frame => frame.StreamId == 1 && frame.Type == YamuxFrameType.WindowUpdate && frame.Flags == YamuxFlags.None);
        await stream.DisposeAsync();
    }

    [Fact]
    public async Task WindowUpdate_SentOnceHalfTheWindowIsConsumed_NotBefore()
    {
        await using var peer = new YamuxTestPeer(sessionIsClient: false);
        var stream = await OpenFromPeerAsync(peer, 1);
        var reading = YamuxSessionTests.ReadToEndAsync(stream);

        await peer.SendAsync(YamuxTestPeer.Data(1, Half - 1));
        var before = await peer.PingAsync(1);
        before.AddRange(await peer.PingAsync(2));
        Assert.DoesNotContain(before, frame => frame.Type == YamuxFrameType.WindowUpdate && frame.StreamId == 1);

        await peer.SendAsync(YamuxTestPeer.Data(1, 1));
        var update = (await peer.ReadUntilAsync(frame => frame.Type == YamuxFrameType.WindowUpdate && frame.StreamId == 1)).Last();
        Assert.Equal((uint)Half, update.Length);

        await peer.SendAsync(YamuxTestPeer.Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Fin, 1, 0));
        await reading.WaitAsync(Timeout);
        await stream.DisposeAsync();
    }

    [Fact]
    public async Task WindowUpdate_AfterOurFin_WaitsUntilThePeerIsOutOfWindow()
    {
        await using var peer = new YamuxTestPeer(sessionIsClient: false);
        var stream = await OpenFromPeerAsync(peer, 1);
        var reading = YamuxSessionTests.ReadToEndAsync(stream);
        await stream.Transport.Output.CompleteAsync();
        await peer.ReadUntilAsync(frame => frame.StreamId == 1 && (frame.Flags & YamuxFlags.Fin) != 0);

        // Consumed past half, but the peer still has window: it may be about to send its FIN.
        await peer.SendAsync(YamuxTestPeer.Data(1, Half + 1000));
        var held = await peer.PingAsync(1);
        held.AddRange(await peer.PingAsync(2));
        Assert.DoesNotContain(held, frame => frame.Type == YamuxFrameType.WindowUpdate && frame.StreamId == 1);

        // Out of window now: it cannot have finished, and gets everything back.
        await peer.SendAsync(YamuxTestPeer.Data(1, YamuxOptions.SpecInitialWindow - Half - 1000));
        var update = (await peer.ReadUntilAsync(frame => frame.Type == YamuxFrameType.WindowUpdate && frame.StreamId == 1)).Last();
        Assert.Equal((uint)YamuxOptions.SpecInitialWindow, update.Length);

        await peer.SendAsync(YamuxTestPeer.Data(1, 10), YamuxTestPeer.Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Fin, 1, 0));
        Assert.Equal(YamuxOptions.SpecInitialWindow + 10, (await reading.WaitAsync(Timeout)).Length);
        await stream.DisposeAsync();
    }

    /// <summary>The peer opens stream <paramref name="id"/>; returns it once accepted and acknowledged.</summary>
    private static async Task<YamuxStream> OpenFromPeerAsync(YamuxTestPeer peer, uint id)
    {
        await peer.SendAsync(YamuxTestPeer.Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, id, 0));
        var stream = await peer.Session.AcceptStreamAsync().AsTask().WaitAsync(Timeout);
        Assert.NotNull(stream);
        await peer.ReadUntilAsync(frame => frame.StreamId == id && (frame.Flags & YamuxFlags.Ack) != 0);
        return stream;
    }
}
