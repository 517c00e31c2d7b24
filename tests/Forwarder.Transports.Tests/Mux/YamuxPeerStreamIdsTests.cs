using Forwarder.Transports.Mux;

namespace Forwarder.Transports.Tests.Mux;

public sealed class YamuxPeerStreamIdsTests
{
    [Fact]
    public void Record_IdsOutOfOrder_AreEachNewOnce()
    {
        var ids = new YamuxPeerStreamIds(parity: 1);
        foreach (var id in new uint[] { 7, 1, 5, 3, 11 })
        {
            Assert.Equal(YamuxSynVerdict.New, ids.Record(id));
        }

        foreach (var id in new uint[] { 1, 3, 5, 7, 11 })
        {
            Assert.Equal(YamuxSynVerdict.Reused, ids.Record(id));
        }

        Assert.Equal(YamuxSynVerdict.New, ids.Record(9));
    }

    [Fact]
    public void Record_OurParity_IsWrongParity()
        => Assert.Equal(YamuxSynVerdict.WrongParity, new YamuxPeerStreamIds(parity: 0).Record(3));

    [Fact]
    public void Record_BelowTheWindow_IsTooOld_AndTheWindowSlidesWithoutKeepingOldMarks()
    {
        var ids = new YamuxPeerStreamIds(parity: 0);
        Assert.Equal(YamuxSynVerdict.New, ids.Record(2));
        Assert.Equal(YamuxSynVerdict.New, ids.Record(4));

        // Id 2 is the peer's index 1; once the highest index is Window above it, it is out of sight.
        var far = (uint)(2 * (YamuxPeerStreamIds.Window + 1));
        Assert.Equal(YamuxSynVerdict.New, ids.Record(far));
        Assert.Equal(YamuxSynVerdict.TooOld, ids.Record(2));
        Assert.Equal(YamuxSynVerdict.Reused, ids.Record(4));

        // The bitmap slots reused for indices just below the new highest hold no stale marks.
        Assert.Equal(YamuxSynVerdict.New, ids.Record(far - 2));
        Assert.Equal(YamuxSynVerdict.New, ids.Record(far + (2 * YamuxPeerStreamIds.Window) + 2));
        Assert.Equal(YamuxSynVerdict.New, ids.Record(far + (2 * YamuxPeerStreamIds.Window)));
    }
}
