using Forwarder.L7.Http2.Client;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>
/// A pooled list (an exchange's upstream request head) that a client fills with big headers,
/// request after request: past what it keeps its buffer goes back to the array pool on Recycle
/// and comes from it again, so the repeats allocate nothing.
/// </summary>
public sealed class Http2HeaderListTests
{
    [Fact]
    public void BigHeadersRepeatedly_AfterTheFirst_AllocateNothing()
    {
        var list = new Http2HeaderList();
        var value = new byte[20 * 1024];
        value.AsSpan().Fill((byte)'v');
        FillAndRecycle(list, value);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++)
        {
            FillAndRecycle(list, value);
        }

        // 50 lists of 20 KiB allocated anew would be 1 MB.
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 4 * 1024);
    }

    [Fact]
    public void BigHeaders_ReadBackWhole_ThenSmallOnesAfterRecycle()
    {
        var list = new Http2HeaderList();
        var value = new byte[20 * 1024];
        value.AsSpan().Fill((byte)'v');
        list.Add("a"u8, "1"u8);
        list.Add("big"u8, value);

        Assert.Equal("1"u8.ToArray(), list.Value(list.IndexOf("a"u8)).ToArray());
        Assert.True(list.Value(1).SequenceEqual(value));
        list.Recycle();
        list.Add("b"u8, "2"u8);
        Assert.Equal(1, list.Count);
        Assert.Equal("2"u8.ToArray(), list.Value(0).ToArray());
    }

    private static void FillAndRecycle(Http2HeaderList list, byte[] value)
    {
        list.Add(":method"u8, "GET"u8);
        list.Add("big"u8, value);
        list.Recycle();
    }
}
