using System.Buffers;
using System.Buffers.Binary;

namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// Writes HTTP/2 frames (RFC 9113 6) into an <see cref="IBufferWriter{T}"/>. Header blocks and
/// data longer than the peer's SETTINGS_MAX_FRAME_SIZE are split: a header block into HEADERS (or
/// PUSH_PROMISE) and CONTINUATION frames, data into several DATA frames with END_STREAM on the last.
/// </summary>
internal static class Http2FrameWriter
{
    public static void WriteData(IBufferWriter<byte> output, int streamId, ReadOnlySpan<byte> data, bool endStream, int maxFrameSize = Http2Frames.DefaultMaxFrameSize)
    {
        do
        {
            var chunk = data[..Math.Min(data.Length, maxFrameSize)];
            data = data[chunk.Length..];
            WriteFrame(output, Http2Frames.Data, endStream && data.IsEmpty ? Http2Frames.EndStream : (byte)0, streamId, chunk);
        }
        while (!data.IsEmpty);
    }

    public static void WriteHeaders(IBufferWriter<byte> output, int streamId, ReadOnlySpan<byte> headerBlock, bool endStream, int maxFrameSize = Http2Frames.DefaultMaxFrameSize) =>
        WriteHeaderBlock(output, Http2Frames.Headers, endStream ? Http2Frames.EndStream : (byte)0, streamId, [], headerBlock, maxFrameSize);

    public static void WritePushPromise(IBufferWriter<byte> output, int streamId, int promisedStreamId, ReadOnlySpan<byte> headerBlock, int maxFrameSize = Http2Frames.DefaultMaxFrameSize)
    {
        Span<byte> promised = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(promised, promisedStreamId);
        WriteHeaderBlock(output, Http2Frames.PushPromise, 0, streamId, promised, headerBlock, maxFrameSize);
    }

    public static void WritePriority(IBufferWriter<byte> output, int streamId, int dependency, bool exclusive, byte weight)
    {
        Span<byte> payload = stackalloc byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)dependency | (exclusive ? 0x8000_0000u : 0));
        payload[4] = weight;
        WriteFrame(output, Http2Frames.Priority, 0, streamId, payload);
    }

    public static void WriteRstStream(IBufferWriter<byte> output, int streamId, Http2ErrorCode code)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)code);
        WriteFrame(output, Http2Frames.RstStream, 0, streamId, payload);
    }

    public static void WriteSettings(IBufferWriter<byte> output, ReadOnlySpan<Http2Setting> settings)
    {
        var span = output.GetSpan(Http2Frames.HeaderLength + (settings.Length * Http2Setting.Length));
        WriteHeader(span, settings.Length * Http2Setting.Length, Http2Frames.Settings, 0, 0);
        var at = Http2Frames.HeaderLength;
        foreach (var setting in settings)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)setting.Id);
            BinaryPrimitives.WriteUInt32BigEndian(span[(at + 2)..], setting.Value);
            at += Http2Setting.Length;
        }

        output.Advance(at);
    }

    public static void WriteSettingsAck(IBufferWriter<byte> output) => WriteFrame(output, Http2Frames.Settings, Http2Frames.Ack, 0, []);

    public static void WritePing(IBufferWriter<byte> output, ulong data, bool ack)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(payload, data);
        WriteFrame(output, Http2Frames.Ping, ack ? Http2Frames.Ack : (byte)0, 0, payload);
    }

    public static void WriteGoAway(IBufferWriter<byte> output, int lastStreamId, Http2ErrorCode code, ReadOnlySpan<byte> debugData = default)
    {
        var span = output.GetSpan(Http2Frames.HeaderLength + 8 + debugData.Length);
        WriteHeader(span, 8 + debugData.Length, Http2Frames.GoAway, 0, 0);
        BinaryPrimitives.WriteInt32BigEndian(span[Http2Frames.HeaderLength..], lastStreamId);
        BinaryPrimitives.WriteUInt32BigEndian(span[(Http2Frames.HeaderLength + 4)..], (uint)code);
        debugData.CopyTo(span[(Http2Frames.HeaderLength + 8)..]);
        output.Advance(Http2Frames.HeaderLength + 8 + debugData.Length);
    }

    public static void WriteWindowUpdate(IBufferWriter<byte> output, int streamId, int increment)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, increment);
        WriteFrame(output, Http2Frames.WindowUpdate, 0, streamId, payload);
    }

    /// <summary>Writes a 9-byte frame header at the start of <paramref name="destination"/>.</summary>
    public static void WriteHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId);
    }

    private static void WriteFrame(IBufferWriter<byte> output, byte type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var span = output.GetSpan(Http2Frames.HeaderLength + payload.Length);
        WriteHeader(span, payload.Length, type, flags, streamId);
        payload.CopyTo(span[Http2Frames.HeaderLength..]);
        output.Advance(Http2Frames.HeaderLength + payload.Length);
    }

    private static void WriteHeaderBlock(IBufferWriter<byte> output, byte type, byte flags, int streamId, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> block, int maxFrameSize)
    {
        var first = block[..Math.Min(block.Length, maxFrameSize - prefix.Length)];
        block = block[first.Length..];
        var length = prefix.Length + first.Length;
        var span = output.GetSpan(Http2Frames.HeaderLength + length);
        WriteHeader(span, length, type, (byte)(flags | (block.IsEmpty ? Http2Frames.EndHeaders : 0)), streamId);
        prefix.CopyTo(span[Http2Frames.HeaderLength..]);
        first.CopyTo(span[(Http2Frames.HeaderLength + prefix.Length)..]);
        output.Advance(Http2Frames.HeaderLength + length);
        while (!block.IsEmpty)
        {
            var chunk = block[..Math.Min(block.Length, maxFrameSize)];
            block = block[chunk.Length..];
            WriteFrame(output, Http2Frames.Continuation, block.IsEmpty ? Http2Frames.EndHeaders : (byte)0, streamId, chunk);
        }
    }
}
