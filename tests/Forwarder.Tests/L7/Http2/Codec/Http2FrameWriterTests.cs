using System.Buffers;
using Forwarder.L7.Http2.Codec;
using static Forwarder.Tests.L7.Http2.Codec.Http2FrameReaderTests;

namespace Forwarder.Tests.L7.Http2.Codec;

public sealed class Http2FrameWriterTests
{
    [Fact]
    public void WriteHeaders_BlockLongerThanMaxFrameSize_HeadersThenContinuationsTheReaderJoins()
    {
        var block = Enumerable.Range(0, 40_000).Select(i => (byte)i).ToArray();
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Written(o => Http2FrameWriter.WriteHeaders(o, 5, block, endStream: true, maxFrameSize: 16_384)));

        var frames = new List<Http2Frame>();
        while (reader.TryRead(ref buffer, out var frame))
        {
            frames.Add(frame);
        }

        Assert.Equal([Http2Frames.Headers, Http2Frames.Continuation, Http2Frames.Continuation], frames.Select(f => f.Type));
        Assert.Equal([false, false, true], frames.Select(f => f.EndHeaders));
        Assert.True(frames[0].EndStream);
        Assert.Equal(block, frames.SelectMany(f => f.Payload.ToArray()));
        Assert.False(reader.InHeaderBlock);
    }

    [Fact]
    public void WriteData_LongerThanMaxFrameSize_SplitWithEndStreamOnlyOnTheLast()
    {
        var data = new byte[20_000];
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Written(o => Http2FrameWriter.WriteData(o, 1, data, endStream: true)));

        Assert.True(reader.TryRead(ref buffer, out var first));
        Assert.True(reader.TryRead(ref buffer, out var second));
        Assert.Equal((16_384, false), ((int)first.Payload.Length, first.EndStream));
        Assert.Equal((3_616, true), ((int)second.Payload.Length, second.EndStream));
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Write_EveryControlFrame_ReadBackWithItsFields()
    {
        var bytes = Written(o =>
        {
            Http2FrameWriter.WriteSettings(o, [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1 << 20)]);
            Http2FrameWriter.WriteSettingsAck(o);
            Http2FrameWriter.WritePriority(o, 3, 1, exclusive: true, 200);
            Http2FrameWriter.WriteRstStream(o, 3, Http2ErrorCode.Cancel);
            Http2FrameWriter.WritePushPromise(o, 3, 4, [0x82]);
            Http2FrameWriter.WriteGoAway(o, 7, Http2ErrorCode.EnhanceYourCalm, "flood"u8);
            Http2FrameWriter.WriteWindowUpdate(o, 0, 1_000_000);
        });
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(bytes);
        var frames = new List<Http2Frame>();
        while (reader.TryRead(ref buffer, out var frame))
        {
            frames.Add(frame);
        }

        Assert.Equal([new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1 << 20)], frames[0].Settings.ToList());
        Assert.True(frames[1].IsAck);
        Assert.Equal(Http2Frames.Priority, frames[2].Type);
        Assert.Equal(Http2ErrorCode.Cancel, frames[3].RstStreamErrorCode);
        Assert.Equal(4, frames[4].PromisedStreamId);
        Assert.Equal([0x82], frames[4].Payload.ToArray());
        Assert.Equal((7, Http2ErrorCode.EnhanceYourCalm), (frames[5].GoAwayLastStreamId, frames[5].GoAwayErrorCode));
        Assert.Equal("flood"u8.ToArray(), frames[5].GoAwayDebugData.ToArray());
        Assert.Equal((0, 1_000_000), (frames[6].StreamId, frames[6].WindowIncrement));
        Assert.True(buffer.IsEmpty);
    }
}
