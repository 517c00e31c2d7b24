using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <content>
/// A small response whose head, body and trailers are all at hand (a proxied response the
/// upstream's read held whole): its frames go into the next batch in one step, not through the
/// stream's response pipe and ready queue (a pipe write and flush, a lock and enqueue per step,
/// a DATA frame and then a separate END_STREAM frame from the writer).
/// </content>
internal sealed partial class Http2ServerConnection
{
    /// <summary>
    /// The largest body sent whole: a batch stays about one <see cref="BatchSize"/>, and the
    /// round robin between streams (which a whole response skips) matters only for more.
    /// </summary>
    internal const int WholeResponseMaxBody = 16 * 1024;

    /// <summary>
    /// Queues the whole response (HEADERS, DATA, trailers, END_STREAM on the last frame) when the
    /// stream's and the connection's send windows take the whole body now; false, with nothing
    /// written, when they do not (or the stream's head went already, or it was reset): the caller
    /// sends it the ordinary way, which waits for the windows and sees a reset.
    /// </summary>
    internal bool TryWriteWholeResponse(Http2ServerStream stream, int status, Http2HeaderFields headers, in ReadOnlySequence<byte> body, Http2HeaderFields? trailers)
    {
        var length = (int)Math.Min(body.Length, int.MaxValue);
        var hasTrailers = trailers is { Count: > 0 };
        lock (_lock)
        {
            // Over the backlog, the pipe path: it keeps the stream's slot and its backpressure, where
            // queued whole responses (their streams freed at once) would grow without bound
            // for a client that grants huge windows and does not read.
            if (status < 200 || length > WholeResponseMaxBody || !stream.Active || stream.LocalClosed || stream.HeadersSent
                || stream.Ending || length > stream.SendWindow.Available || length > _connectionSend.Available
                || _control.WrittenCount + length > ControlBacklogLimit)
            {
                return false;
            }

            WriteHead(stream.Id, status, headers, endStream: length == 0 && !hasTrailers);
            stream.HeadersSent = true;
            stream.SendWindow.Take(length);
            _connectionSend.Take(length);
            WriteDataFrames(stream.Id, body, endStream: !hasTrailers);
            if (hasTrailers)
            {
                _headerScratch.ResetWrittenCount();
                _encoder.BeginBlock(_headerScratch);
                EncodeFields(trailers, _headerScratch);
                Http2FrameWriter.WriteHeaders(_control, stream.Id, _headerScratch.WrittenSpan, endStream: true, _peerMaxFrameSize);
            }

            stream.Ending = stream.LocalClosed = true;
            TryClose(stream);
            RequestFlush();
        }

        FlushIfWanted();
        return true;
    }

    /// <summary>Under the lock: <paramref name="body"/> as DATA frames of at most the peer's frame size into the control queue; END_STREAM on the last when <paramref name="endStream"/>.</summary>
    private void WriteDataFrames(int id, ReadOnlySequence<byte> body, bool endStream)
    {
        Span<byte> header = stackalloc byte[Http2Frames.HeaderLength];
        while (!body.IsEmpty)
        {
            var length = (int)Math.Min(body.Length, _peerMaxFrameSize);
            var last = length == body.Length;
            Http2FrameWriter.WriteHeader(header, length, Http2Frames.Data, last && endStream ? Http2Frames.EndStream : (byte)0, id);
            _control.Write(header);
            foreach (var segment in body.Slice(0, length))
            {
                _control.Write(segment.Span);
            }

            body = body.Slice(length);
        }
    }
}
