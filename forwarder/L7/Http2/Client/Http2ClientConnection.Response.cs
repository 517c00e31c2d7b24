using System.Buffers;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Client;

/// <summary>The response arriving: DATA into the body pipe, header blocks (CONTINUATION included) into the head or trailers.</summary>
internal sealed partial class Http2ClientConnection
{
    private byte[] _block = [];
    private int _blockLength;
    private int _blockStream;
    private bool _blockEndStream;

    /// <summary>The most a header block may take compressed before it is decoded: a flood of CONTINUATION stops here.</summary>
    private int MaxHeaderBlock => (2 * _options.MaxHeaderListSize) + Http2Frames.DefaultMaxFrameSize;

    private void OnData(in Http2Frame frame)
    {
        var id = frame.StreamId;
        var length = frame.FlowControlledLength;
        var data = (int)frame.Payload.Length;
        Http2ClientExchange? stream;
        bool ended;
        Http2ResponseBudget? wake = null;
        lock (_gate)
        {
            // The connection's credit goes back at once: what a stream holds unread is bounded by
            // its own window, so a stream whose client reads slowly never holds the connection's
            // window, which its other streams (other clients') share.
            _receiveWindow.Receive(length, 0);
            if (_receiveWindow.Consume(length) is > 0 and var connectionIncrement)
            {
                Http2FrameWriter.WriteWindowUpdate(ControlOut, 0, connectionIncrement);
            }

            stream = Hold(id);
            if (stream is null || stream.RemoteEnded || !stream.HeadReceived)
            {
                stream?.Release();
                if (stream is not null)
                {
                    throw new Http2StreamException(id, stream.RemoteEnded ? Http2ErrorCode.StreamClosed : Http2ErrorCode.ProtocolError, "DATA outside a response body");
                }

                return;
            }

            try
            {
                stream.Credit.Receive(length, id);
            }
            catch (Http2StreamException)
            {
                stream.Release();
                throw;
            }

            stream.Budget?.AddBuffered(length);
            if (length > data)
            {
                // Padding is consumed on arrival. The budget is captured under the lock, as Unbind
                // does: the lease may end (and unbind) once it is let go.
                wake = ConsumeCredit(stream, length - data, ControlOut) ? stream.Budget : null;
            }

            ended = frame.EndStream;
            if (ended)
            {
                stream.RemoteEnded = true;
                CloseIfEnded(stream);
            }
        }

        try
        {
            var writer = stream.Body.Writer;
            foreach (var segment in frame.Payload)
            {
                writer.Write(segment.Span);
            }

            if (ended)
            {
                writer.Complete();
            }
            else
            {
                // Never pauses (flow control bounds the pipe); wakes the reader inline.
                _ = writer.FlushAsync();
            }
        }
        finally
        {
            wake?.Wake();
            stream.Release();
        }
    }

    private void OnHeaders(in Http2Frame frame)
    {
        if (frame.EndHeaders && frame.Payload.IsSingleSegment)
        {
            OnHeaderBlock(frame.StreamId, frame.Payload.FirstSpan, frame.EndStream);
            return;
        }

        _blockStream = frame.StreamId;
        _blockEndStream = frame.EndStream;
        _blockLength = 0;
        OnContinuation(frame);
    }

    private void OnContinuation(in Http2Frame frame)
    {
        var length = (int)frame.Payload.Length;
        if (_blockLength + length > MaxHeaderBlock)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"a header block above {MaxHeaderBlock} bytes");
        }

        if (_block.Length < _blockLength + length)
        {
            Array.Resize(ref _block, Math.Max(_blockLength + length, _block.Length * 2));
        }

        frame.Payload.CopyTo(_block.AsSpan(_blockLength));
        _blockLength += length;
        if (frame.EndHeaders)
        {
            OnHeaderBlock(_blockStream, _block.AsSpan(0, _blockLength), _blockEndStream);
        }
    }

    private void OnHeaderBlock(int id, ReadOnlySpan<byte> block, bool endStream)
    {
        Http2ClientExchange? stream;
        bool trailers;
        bool ended;
        lock (_gate)
        {
            stream = Hold(id);
            trailers = stream?.HeadReceived ?? false;
            ended = stream?.RemoteEnded ?? false;
        }

        if (ended)
        {
            // HEADERS after the server ended the stream: the fields the caller reads stay as they are.
            var discard = default(DiscardSink);
            _decoder.Decode(block, ref discard);
            stream!.Release();
            throw new Http2StreamException(id, Http2ErrorCode.StreamClosed, "HEADERS after END_STREAM");
        }

        if (stream is null)
        {
            // A stream already reset: decoded all the same, to keep the table in step with the server's.
            var discard = default(DiscardSink);
            _decoder.Decode(block, ref discard);
            return;
        }

        try
        {
            var fields = trailers ? stream.ResponseTrailers : stream.ResponseHeaders;
            fields.Clear();
            if (_decoder.Decode(block, ref fields) == HpackDecodeResult.HeaderListTooLarge)
            {
                throw new Http2StreamException(id, Http2ErrorCode.Cancel, $"response fields above the {_options.MaxHeaderListSize}-byte limit");
            }

            if (trailers)
            {
                OnTrailers(stream, endStream);
            }
            else
            {
                OnHead(stream, endStream);
            }
        }
        finally
        {
            stream.Release();
        }
    }

    private void OnHead(Http2ClientExchange stream, bool endStream)
    {
        var status = ParseStatus(stream.ResponseHeaders);
        if (status < 0)
        {
            throw new Http2StreamException(stream.Id, Http2ErrorCode.ProtocolError, "a response head without a valid :status");
        }

        if (status < 200)
        {
            if (endStream)
            {
                throw new Http2StreamException(stream.Id, Http2ErrorCode.ProtocolError, "an interim response with END_STREAM");
            }

            // An interim (1xx) head: the final one follows.
            stream.ResponseHeaders.Clear();
            return;
        }

        bool wake;
        lock (_gate)
        {
            if (stream.RemoteEnded || stream.Error is not null)
            {
                return;
            }

            stream.Status = status;
            stream.HeadReceived = true;
            wake = stream.HeadWaiting;
            stream.HeadWaiting = false;
            if (endStream)
            {
                stream.RemoteEnded = true;
                CloseIfEnded(stream);
            }
        }

        if (endStream)
        {
            stream.Body.Writer.Complete();
        }

        if (wake)
        {
            // At the read's end (WakeHeads): the body and END_STREAM that came in the same read
            // are in by then, so a small response is sent on whole, not frame by frame.
            _headWakes.Add(stream);
        }
    }

    private void OnTrailers(Http2ClientExchange stream, bool endStream)
    {
        if (!endStream)
        {
            throw new Http2StreamException(stream.Id, Http2ErrorCode.ProtocolError, "trailers without END_STREAM");
        }

        lock (_gate)
        {
            if (stream.RemoteEnded || stream.Error is not null)
            {
                return;
            }

            stream.RemoteEnded = true;
            CloseIfEnded(stream);
        }

        stream.Body.Writer.Complete();
    }

    /// <summary>A 3-digit :status, or -1.</summary>
    private static int ParseStatus(Http2HeaderList fields)
    {
        var index = fields.IndexOf(":status"u8);
        if (index < 0)
        {
            return -1;
        }

        var value = fields.Value(index);
        if (value.Length != 3 || !char.IsAsciiDigit((char)value[0]) || !char.IsAsciiDigit((char)value[1]) || !char.IsAsciiDigit((char)value[2]))
        {
            return -1;
        }

        return ((value[0] - '0') * 100) + ((value[1] - '0') * 10) + (value[2] - '0');
    }

    /// <summary>Takes a header block nobody wants.</summary>
    private struct DiscardSink : IHpackSink
    {
        public readonly void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
        }
    }
}
