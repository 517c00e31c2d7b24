using System.Buffers;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Server;

/// <content>Header blocks: HEADERS and CONTINUATION joined, decoded, and handed on as a new stream or a stream's trailers.</content>
internal sealed partial class Http2ServerConnection
{
    // The header block being received: HEADERS then CONTINUATION fragments, joined.
    private byte[] _block = [];
    private int _blockLength;
    private int _blockWireSize;
    private int _blockStream;
    private bool _blockEndStream;
    private bool _blockOpens;

    private void OnHeaders(in Http2Frame frame)
    {
        var id = frame.StreamId;
        if ((id & 1) == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"HEADERS on even stream {id}");
        }

        _blockOpens = id > _lastStreamId;
        if (!_blockOpens)
        {
            bool known;
            lock (_lock)
            {
                known = _streams.ContainsKey(id) || RecentlyReset(id);
            }

            if (!known)
            {
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"HEADERS on stream {id}, not above {_lastStreamId} and not open");
            }
        }
        else
        {
            _lastStreamId = id;
        }

        _blockStream = id;
        _blockEndStream = frame.EndStream;
        _blockLength = 0;
        _blockWireSize = 0;
        AppendBlock(frame);
    }

    /// <summary>Joins a fragment to the block; the cap counts frame headers too, so empty CONTINUATIONs add up.</summary>
    private void AppendBlock(in Http2Frame frame)
    {
        var length = (int)frame.Payload.Length;
        _blockWireSize += Http2Frames.HeaderLength + length;
        if (_blockWireSize > _maxHeaderBlockSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"a header block over {_maxHeaderBlockSize} bytes");
        }

        if (_blockLength + length > _block.Length)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(_blockLength + length, 4096));
            _block.AsSpan(0, _blockLength).CopyTo(grown);
            ReturnBlock(_block);
            _block = grown;
        }

        frame.Payload.CopyTo(_block.AsSpan(_blockLength));
        _blockLength += length;
        if (frame.EndHeaders)
        {
            EndBlock();
        }
    }

    private void EndBlock()
    {
        _firstBlockDone = true;
        var id = _blockStream;
        Http2ServerStream? stream;
        lock (_lock)
        {
            _streams.TryGetValue(id, out stream);
        }

        var trailers = stream is not null;
        var fields = _target.Current;
        fields.Clear();
        _validator.Begin(trailers);
        var validator = _validator;
        var decoded = _decoder.Decode(_block.AsSpan(0, _blockLength), ref validator);
        var malformed = _validator.End();
        if (stream is not null)
        {
            EndTrailers(stream, decoded, malformed ?? (_validator.InvalidValue ? "a trailer value with a control character" : null));
        }
        else if (_blockOpens)
        {
            OpenStream(id, decoded == HpackDecodeResult.HeaderListTooLarge ? 431 : _validator.InvalidValue ? 400 : 0, malformed);
        }

        // Otherwise a block on a stream reset meanwhile: decoded only to keep the HPACK table in step.
    }

    private void EndTrailers(Http2ServerStream stream, HpackDecodeResult decoded, string? malformed)
    {
        lock (_lock)
        {
            if (stream.RemoteClosed)
            {
                throw new Http2StreamException(stream.Id, Http2ErrorCode.StreamClosed, "HEADERS after END_STREAM");
            }

            if (!_blockEndStream || malformed is not null || decoded != HpackDecodeResult.Complete)
            {
                throw new Http2StreamException(stream.Id, Http2ErrorCode.ProtocolError, malformed ?? "trailers without END_STREAM, or too large");
            }

            var filled = _target.Current;
            _target.Current = stream.RequestTrailers;
            stream.RequestTrailers = filled;
            stream.RemoteClosed = true;
            stream.RequestWriter.Complete();
            TryClose(stream);
        }
    }
}
