using System.Buffers;
using System.Buffers.Binary;

namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// Reads one direction of an HTTP/2 connection frame by frame (RFC 9113 4, 6) and applies every
/// rule that needs no stream state: frame sizes, which frames may or must name a stream, padding,
/// CONTINUATION following its HEADERS or PUSH_PROMISE with nothing in between, SETTINGS values,
/// and zero window increments. A broken rule throws <see cref="Http2ConnectionException"/>, or
/// <see cref="Http2StreamException"/> when only the stream is harmed, in which case the frame has
/// been consumed and reading can go on. Frames of unknown types come back for the caller to skip
/// (RFC 9113 5.5).
/// </summary>
internal sealed class Http2FrameReader
{
    private int _headerBlockStream;

    /// <summary>This side's SETTINGS_MAX_FRAME_SIZE: a longer frame is a FRAME_SIZE_ERROR.</summary>
    public int MaxFrameSize { get; set; } = Http2Frames.DefaultMaxFrameSize;

    /// <summary>True while a header block waits for CONTINUATION frames.</summary>
    public bool InHeaderBlock => _headerBlockStream != 0;

    /// <summary>
    /// Takes the next whole frame off the front of <paramref name="buffer"/>; false (buffer
    /// untouched) when it has not all arrived.
    /// </summary>
    public bool TryRead(ref ReadOnlySequence<byte> buffer, out Http2Frame frame)
    {
        frame = default;
        if (buffer.Length < Http2Frames.HeaderLength)
        {
            return false;
        }

        var header = ReadHeader(buffer);
        if (header.Length > MaxFrameSize)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, $"a {header.Length}-byte frame, above the {MaxFrameSize} allowed");
        }

        if (buffer.Length < Http2Frames.HeaderLength + header.Length)
        {
            return false;
        }

        var payload = buffer.Slice(Http2Frames.HeaderLength, header.Length);
        buffer = buffer.Slice(payload.End);
        CheckSequence(header);
        frame = header.Type switch
        {
            Http2Frames.Data => Padded(header, payload, stripPriority: false),
            Http2Frames.Headers => Padded(header, payload, header.HasFlag(Http2Frames.PriorityFlag)),
            Http2Frames.Priority => Priority(header, payload),
            Http2Frames.RstStream => Fixed(header, payload, 4, onStream: true),
            Http2Frames.Settings => Settings(header, payload),
            Http2Frames.PushPromise => PushPromise(header, payload),
            Http2Frames.Ping => Fixed(header, payload, 8, onStream: false),
            Http2Frames.GoAway => GoAway(header, payload),
            Http2Frames.WindowUpdate => WindowUpdate(header, payload),
            _ => new Http2Frame(header, payload, 0),
        };

        return true;
    }

    private static Http2FrameHeader ReadHeader(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> bytes = stackalloc byte[Http2Frames.HeaderLength];
        buffer.Slice(0, Http2Frames.HeaderLength).CopyTo(bytes);
        return new Http2FrameHeader(
            bytes[0] << 16 | bytes[1] << 8 | bytes[2],
            bytes[3],
            bytes[4],
            (int)(BinaryPrimitives.ReadUInt32BigEndian(bytes[5..]) & 0x7FFF_FFFF));
    }

    private static Http2ConnectionException Connection(Http2ErrorCode code, string message) => new(code, message);

    private static string Name(byte type) => type switch
    {
        Http2Frames.Data => "DATA",
        Http2Frames.Headers => "HEADERS",
        Http2Frames.Priority => "PRIORITY",
        Http2Frames.RstStream => "RST_STREAM",
        Http2Frames.Settings => "SETTINGS",
        Http2Frames.PushPromise => "PUSH_PROMISE",
        Http2Frames.Ping => "PING",
        Http2Frames.GoAway => "GOAWAY",
        Http2Frames.WindowUpdate => "WINDOW_UPDATE",
        Http2Frames.Continuation => "CONTINUATION",
        _ => $"type 0x{type:x2}",
    };

    private static void RequireStream(in Http2FrameHeader header)
    {
        if (header.StreamId == 0)
        {
            throw Connection(Http2ErrorCode.ProtocolError, $"{Name(header.Type)} on stream 0");
        }
    }

    private static void RequireConnection(in Http2FrameHeader header)
    {
        if (header.StreamId != 0)
        {
            throw Connection(Http2ErrorCode.ProtocolError, $"{Name(header.Type)} on stream {header.StreamId}");
        }
    }

    /// <summary>DATA and HEADERS: the pad length, the priority fields of HEADERS, then the padding, all taken off.</summary>
    private static Http2Frame Padded(in Http2FrameHeader header, ReadOnlySequence<byte> payload, bool stripPriority)
    {
        RequireStream(header);
        var padLength = 0;
        if (header.HasFlag(Http2Frames.Padded))
        {
            if (payload.Length < 1)
            {
                throw Connection(Http2ErrorCode.FrameSizeError, $"padded {Name(header.Type)} without a pad length");
            }

            padLength = payload.FirstSpan[0];
            payload = payload.Slice(1);
        }

        if (stripPriority)
        {
            if (payload.Length < 5)
            {
                throw Connection(Http2ErrorCode.FrameSizeError, "HEADERS too short for its priority fields");
            }

            if (ReadStreamId(payload) == header.StreamId)
            {
                // HPACK state would be lost with a stream error here, so the whole connection goes (as Kestrel does).
                throw Connection(Http2ErrorCode.ProtocolError, $"stream {header.StreamId} depends on itself");
            }

            payload = payload.Slice(5);
        }

        if (padLength > payload.Length)
        {
            throw Connection(Http2ErrorCode.ProtocolError, $"{Name(header.Type)} padding of {padLength} bytes exceeds the frame");
        }

        return new Http2Frame(header, payload.Slice(0, payload.Length - padLength), header.Type == Http2Frames.Data ? header.Length : 0);
    }

    private static int ReadStreamId(in ReadOnlySequence<byte> payload)
    {
        Span<byte> bytes = stackalloc byte[4];
        payload.Slice(0, 4).CopyTo(bytes);
        return (int)(BinaryPrimitives.ReadUInt32BigEndian(bytes) & 0x7FFF_FFFF);
    }

    private static Http2Frame Priority(in Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        RequireStream(header);
        if (payload.Length != 5)
        {
            throw new Http2StreamException(header.StreamId, Http2ErrorCode.FrameSizeError, $"a {payload.Length}-byte PRIORITY");
        }

        if (ReadStreamId(payload) == header.StreamId)
        {
            throw new Http2StreamException(header.StreamId, Http2ErrorCode.ProtocolError, $"stream {header.StreamId} depends on itself");
        }

        return new Http2Frame(header, payload, 0);
    }

    private static Http2Frame Fixed(in Http2FrameHeader header, ReadOnlySequence<byte> payload, int length, bool onStream)
    {
        if (onStream)
        {
            RequireStream(header);
        }
        else
        {
            RequireConnection(header);
        }

        if (payload.Length != length)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, $"a {payload.Length}-byte {Name(header.Type)}");
        }

        return new Http2Frame(header, payload, 0);
    }

    private static Http2Frame Settings(in Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        RequireConnection(header);
        if (header.HasFlag(Http2Frames.Ack) && payload.Length != 0)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, "SETTINGS ACK with a payload");
        }

        if (payload.Length % Http2Setting.Length != 0)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, $"a {payload.Length}-byte SETTINGS, not a multiple of 6");
        }

        var frame = new Http2Frame(header, payload, 0);
        foreach (var setting in frame.Settings)
        {
            CheckSetting(setting);
        }

        return frame;
    }

    private static void CheckSetting(Http2Setting setting)
    {
        switch (setting.Id)
        {
            case Http2SettingId.EnablePush or Http2SettingId.EnableConnectProtocol when setting.Value > 1:
                throw Connection(Http2ErrorCode.ProtocolError, $"SETTINGS {setting.Id} = {setting.Value}, neither 0 nor 1");
            case Http2SettingId.InitialWindowSize when setting.Value > Http2Frames.MaxWindowSize:
                throw Connection(Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE = {setting.Value}, above 2^31-1");
            case Http2SettingId.MaxFrameSize when setting.Value is < Http2Frames.DefaultMaxFrameSize or > Http2Frames.MaxAllowedFrameSize:
                throw Connection(Http2ErrorCode.ProtocolError, $"SETTINGS_MAX_FRAME_SIZE = {setting.Value}, outside 16384..16777215");
        }
    }

    private static Http2Frame PushPromise(in Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        RequireStream(header);
        var padLength = 0;
        if (header.HasFlag(Http2Frames.Padded))
        {
            if (payload.Length < 1)
            {
                throw Connection(Http2ErrorCode.FrameSizeError, "padded PUSH_PROMISE without a pad length");
            }

            padLength = payload.FirstSpan[0];
            payload = payload.Slice(1);
        }

        if (payload.Length < 4)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, "PUSH_PROMISE too short for its promised stream");
        }

        var promised = ReadStreamId(payload);
        payload = payload.Slice(4);
        if (padLength > payload.Length)
        {
            throw Connection(Http2ErrorCode.ProtocolError, $"PUSH_PROMISE padding of {padLength} bytes exceeds the frame");
        }

        return new Http2Frame(header, payload.Slice(0, payload.Length - padLength), 0) { PromisedStreamId = promised };
    }

    private static Http2Frame GoAway(in Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        RequireConnection(header);
        if (payload.Length < 8)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, $"a {payload.Length}-byte GOAWAY");
        }

        return new Http2Frame(header, payload, 0);
    }

    private static Http2Frame WindowUpdate(in Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        if (payload.Length != 4)
        {
            throw Connection(Http2ErrorCode.FrameSizeError, $"a {payload.Length}-byte WINDOW_UPDATE");
        }

        var frame = new Http2Frame(header, payload, 0);
        if (frame.WindowIncrement == 0)
        {
            if (header.StreamId == 0)
            {
                throw Connection(Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0 on the connection");
            }

            throw new Http2StreamException(header.StreamId, Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0");
        }

        return frame;
    }

    /// <summary>A header block is HEADERS or PUSH_PROMISE, then CONTINUATION frames on its stream, nothing else, until END_HEADERS (RFC 9113 6.10).</summary>
    private void CheckSequence(in Http2FrameHeader header)
    {
        if (_headerBlockStream != 0)
        {
            if (header.Type != Http2Frames.Continuation || header.StreamId != _headerBlockStream)
            {
                throw Connection(Http2ErrorCode.ProtocolError, $"{Name(header.Type)} on stream {header.StreamId} inside stream {_headerBlockStream}'s header block");
            }
        }
        else if (header.Type == Http2Frames.Continuation)
        {
            throw Connection(Http2ErrorCode.ProtocolError, $"CONTINUATION on stream {header.StreamId} without a header block to continue");
        }

        if (header.Type is Http2Frames.Headers or Http2Frames.PushPromise or Http2Frames.Continuation)
        {
            RequireStream(header);
            _headerBlockStream = header.HasFlag(Http2Frames.EndHeaders) ? 0 : header.StreamId;
        }
    }
}
