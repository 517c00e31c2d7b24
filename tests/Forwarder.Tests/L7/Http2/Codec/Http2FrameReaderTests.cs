using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.Tests.L7.Http2.Codec;

public sealed class Http2FrameReaderTests
{
    [Fact]
    public void TryRead_FrameArrivingByteByByte_FalseUntilWhole()
    {
        var bytes = Written(o => Http2FrameWriter.WritePing(o, 0x0102030405060708, ack: false));
        var reader = new Http2FrameReader();

        for (var length = 0; length < bytes.Length; length++)
        {
            var partial = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(reader.TryRead(ref partial, out _));
            Assert.Equal(length, partial.Length);
        }

        var whole = new ReadOnlySequence<byte>(bytes);
        Assert.True(reader.TryRead(ref whole, out var frame));
        Assert.True(whole.IsEmpty);
        Assert.Equal(0x0102030405060708ul, frame.PingData);
    }

    [Fact]
    public void TryRead_PaddedDataWithPriorityHeaders_PayloadWithoutPaddingOrPriority()
    {
        // DATA, padded: pad length 3, "abc", 3 bytes of padding.
        // HEADERS, padded and with priority: pad 2, dependency 0 + weight, block 0x82, padding.
        var bytes = Convert.FromHexString(
            "000007" + "00" + "08" + "00000001" + "03" + "616263" + "000000" +
            "000009" + "01" + "2c" + "00000003" + "02" + "0000000010" + "82" + "0000");
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(bytes);

        Assert.True(reader.TryRead(ref buffer, out var data));
        Assert.Equal("abc"u8.ToArray(), data.Payload.ToArray());
        Assert.Equal(7, data.FlowControlledLength);
        Assert.True(reader.TryRead(ref buffer, out var headers));
        Assert.Equal([0x82], headers.Payload.ToArray());
        Assert.True(headers.EndHeaders);
    }

    [Theory]
    [InlineData("000000" + "00" + "00" + "00000000", (uint)Http2ErrorCode.ProtocolError, "DATA on stream 0")]
    [InlineData("000001" + "01" + "04" + "00000000" + "82", (uint)Http2ErrorCode.ProtocolError, "HEADERS on stream 0")]
    [InlineData("000004" + "00" + "08" + "00000001" + "04616263", (uint)Http2ErrorCode.ProtocolError, "padding longer than the data")]
    [InlineData("000000" + "00" + "08" + "00000001", (uint)Http2ErrorCode.FrameSizeError, "padded without a pad length")]
    [InlineData("000006" + "01" + "24" + "00000001" + "000000018282", (uint)Http2ErrorCode.ProtocolError, "HEADERS depending on itself")]
    [InlineData("000003" + "03" + "00" + "00000001" + "000000", (uint)Http2ErrorCode.FrameSizeError, "3-byte RST_STREAM")]
    [InlineData("000004" + "03" + "00" + "00000000" + "00000000", (uint)Http2ErrorCode.ProtocolError, "RST_STREAM on stream 0")]
    [InlineData("000006" + "04" + "00" + "00000001" + "000100001000", (uint)Http2ErrorCode.ProtocolError, "SETTINGS on a stream")]
    [InlineData("000005" + "04" + "00" + "00000000" + "0001000010", (uint)Http2ErrorCode.FrameSizeError, "SETTINGS not a multiple of 6")]
    [InlineData("000006" + "04" + "01" + "00000000" + "000100001000", (uint)Http2ErrorCode.FrameSizeError, "SETTINGS ACK with a payload")]
    [InlineData("000006" + "04" + "00" + "00000000" + "000200000002", (uint)Http2ErrorCode.ProtocolError, "ENABLE_PUSH = 2")]
    [InlineData("000006" + "04" + "00" + "00000000" + "000480000000", (uint)Http2ErrorCode.FlowControlError, "INITIAL_WINDOW_SIZE = 2^31")]
    [InlineData("000006" + "04" + "00" + "00000000" + "000500003fff", (uint)Http2ErrorCode.ProtocolError, "MAX_FRAME_SIZE = 16383")]
    [InlineData("000006" + "04" + "00" + "00000000" + "000501000000", (uint)Http2ErrorCode.ProtocolError, "MAX_FRAME_SIZE = 2^24")]
    [InlineData("000007" + "06" + "00" + "00000000" + "00000000000000", (uint)Http2ErrorCode.FrameSizeError, "7-byte PING")]
    [InlineData("000008" + "06" + "00" + "00000001" + "0000000000000000", (uint)Http2ErrorCode.ProtocolError, "PING on a stream")]
    [InlineData("000007" + "07" + "00" + "00000000" + "00000000000000", (uint)Http2ErrorCode.FrameSizeError, "7-byte GOAWAY")]
    [InlineData("000008" + "07" + "00" + "00000003" + "0000000000000000", (uint)Http2ErrorCode.ProtocolError, "GOAWAY on a stream")]
    [InlineData("000003" + "08" + "00" + "00000000" + "000001", (uint)Http2ErrorCode.FrameSizeError, "3-byte WINDOW_UPDATE")]
    [InlineData("000004" + "08" + "00" + "00000000" + "00000000", (uint)Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0 on the connection")]
    [InlineData("000001" + "09" + "04" + "00000001" + "82", (uint)Http2ErrorCode.ProtocolError, "CONTINUATION without HEADERS")]
    [InlineData("000001" + "01" + "00" + "00000001" + "82" + "000008" + "06" + "00" + "00000000" + "0000000000000000", (uint)Http2ErrorCode.ProtocolError, "PING inside a header block")]
    [InlineData("000001" + "01" + "00" + "00000001" + "82" + "000001" + "09" + "04" + "00000003" + "82", (uint)Http2ErrorCode.ProtocolError, "CONTINUATION of another stream")]
    [InlineData("000000" + "fa" + "00" + "00000000" + "000001" + "01" + "00" + "00000001" + "82" + "000000" + "fa" + "00" + "00000000", (uint)Http2ErrorCode.ProtocolError, "unknown frame inside a header block")]
    [InlineData("000008" + "05" + "04" + "00000000" + "0000000282828282", (uint)Http2ErrorCode.ProtocolError, "PUSH_PROMISE on stream 0")]
    public void TryRead_BrokenRule_ConnectionError(string hex, uint code, string why)
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Convert.FromHexString(hex));

        var error = Assert.Throws<Http2ConnectionException>(() =>
        {
            while (reader.TryRead(ref buffer, out _))
            {
            }
        });

        Assert.True((Http2ErrorCode)code == error.Code, $"{why}: {error.Code} ({error.Message})");
    }

    [Fact]
    public void TryRead_FrameAboveMaxFrameSize_FrameSizeErrorBeforeItsPayloadArrives()
    {
        var reader = new Http2FrameReader { MaxFrameSize = 16_384 };
        var buffer = new ReadOnlySequence<byte>(Convert.FromHexString("004001" + "00" + "00" + "00000001"));

        var error = Assert.Throws<Http2ConnectionException>(() => reader.TryRead(ref buffer, out _));

        Assert.Equal(Http2ErrorCode.FrameSizeError, error.Code);
    }

    [Theory]
    [InlineData("000004" + "02" + "00" + "00000003" + "00000000", (uint)Http2ErrorCode.FrameSizeError, "4-byte PRIORITY")]
    [InlineData("000005" + "02" + "00" + "00000003" + "0000000310", (uint)Http2ErrorCode.ProtocolError, "PRIORITY depending on itself")]
    [InlineData("000004" + "08" + "00" + "00000003" + "00000000", (uint)Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0 on a stream")]
    public void TryRead_StreamRuleBroken_StreamErrorAndTheNextFrameStillReads(string hex, uint code, string why)
    {
        var reader = new Http2FrameReader();
        var next = Written(o => Http2FrameWriter.WritePing(o, 42, ack: true));
        var buffer = new ReadOnlySequence<byte>([.. Convert.FromHexString(hex), .. next]);

        var error = Assert.Throws<Http2StreamException>(() => reader.TryRead(ref buffer, out _));

        Assert.True((Http2ErrorCode)code == error.Code, why);
        Assert.Equal(3, error.StreamId);
        Assert.True(reader.TryRead(ref buffer, out var ping));
        Assert.True(ping.IsAck);
        Assert.Equal(42ul, ping.PingData);
    }

    [Fact]
    public void TryRead_UnknownFrameTypeAndSetting_ReturnedForTheCallerToIgnore()
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Convert.FromHexString("000002" + "fa" + "ff" + "00000005" + "abcd" + "000006" + "04" + "00" + "00000000" + "00ff00000007"));

        Assert.True(reader.TryRead(ref buffer, out var unknown));
        Assert.Equal(0xfa, unknown.Type);
        Assert.True(reader.TryRead(ref buffer, out var settings));
        var setting = Assert.Single(settings.Settings.ToList());
        Assert.Equal((Http2SettingId)0xff, setting.Id);
    }

    internal static byte[] Written(Action<ArrayBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        return output.WrittenSpan.ToArray();
    }
}

internal static class SettingsEnumeratorExtensions
{
    public static List<Http2Setting> ToList(this Http2Frame.SettingsEnumerator settings)
    {
        var list = new List<Http2Setting>();
        foreach (var setting in settings)
        {
            list.Add(setting);
        }

        return list;
    }
}
