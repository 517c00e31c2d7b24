using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

// The writer task: woken by the signal, it fills a batch under the lock (control frames first,
// then one DATA frame per ready stream in turn, as the windows allow), writes it in one flush
// outside the lock, and stops once the connection is closing and nothing is left.
internal sealed partial class Http2ServerConnection
{
    private async Task WriteLoopAsync()
    {
        try
        {
            while (true)
            {
                await _signal.WaitAsync().ConfigureAwait(false);
                while (true)
                {
                    int written;
                    bool closing;
                    lock (_lock)
                    {
                        written = Fill();
                        closing = _closing;
                    }

                    if (written == 0)
                    {
                        if (closing)
                        {
                            return;
                        }

                        break;
                    }

                    var result = await _output.FlushAsync().ConfigureAwait(false);
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        PeerGone();
                        return;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            PeerGone();
        }
    }

    private void PeerGone()
    {
        lock (_lock)
        {
            Drained();
        }
    }

    /// <summary>Under the lock: moves a batch into the transport's output; its size (0: nothing to send).</summary>
    private int Fill()
    {
        _flushWanted = false;
        var written = _control.WrittenCount;
        if (written > 0)
        {
            _output.Write(_control.WrittenSpan);
            if (_control.Capacity > ControlKeepCapacity)
            {
                // A burst grew it: not kept for the connection's life.
                _control = new ArrayBufferWriter<byte>(ControlInitialCapacity);
            }
            else
            {
                _control.ResetWrittenCount();
            }

            WakeReader();
        }

        while (written < BatchSize && _ready.TryDequeue(out var stream))
        {
            if (!stream.Active || stream.LocalClosed)
            {
                stream.Queued = false;
                TryRecycle(stream);
                continue;
            }

            var sent = WriteData(stream);
            if (sent < 0)
            {
                // The connection window is spent: the stream keeps its turn until a WINDOW_UPDATE.
                _ready.Enqueue(stream);
                break;
            }

            written += sent;
        }

        return written;
    }

    /// <summary>Under the lock: one frame of the stream's response (or its end); the bytes written, -1 when the connection window is spent.</summary>
    private int WriteData(Http2ServerStream stream)
    {
        var ending = stream.Ending;
        var reader = stream.ResponseReader;
        ReadOnlySequence<byte> data = default;
        if (reader.TryRead(out var read))
        {
            data = read.Buffer;
            if (data.IsEmpty)
            {
                reader.AdvanceTo(data.Start);
            }
        }

        if (data.IsEmpty)
        {
            stream.Queued = false;
            return ending ? End(stream) : 0;
        }

        var allowed = Math.Min(Math.Min(data.Length, _peerMaxFrameSize), Math.Min(stream.SendWindow.Available, _connectionSend.Available));
        if (allowed <= 0)
        {
            reader.AdvanceTo(data.Start);
            if (_connectionSend.Available <= 0)
            {
                return -1;
            }

            // The stream's window is spent: it waits for its WINDOW_UPDATE (which queues it again).
            stream.Queued = false;
            return 0;
        }

        var length = (int)allowed;
        stream.SendWindow.Take(length);
        _connectionSend.Take(length);
        var last = ending && length == data.Length && stream.Trailers.WrittenCount == 0;
        // The transport's blocks may be smaller than a frame: the header, then the data as it fits.
        Span<byte> header = stackalloc byte[Http2Frames.HeaderLength];
        Http2FrameWriter.WriteHeader(header, length, Http2Frames.Data, last ? Http2Frames.EndStream : (byte)0, stream.Id);
        _output.Write(header);
        foreach (var segment in data.Slice(0, length))
        {
            _output.Write(segment.Span);
        }

        reader.AdvanceTo(data.GetPosition(length));
        if (last)
        {
            stream.Queued = false;
            stream.LocalClosed = true;
            TryClose(stream);
        }
        else
        {
            // Queued still: its next frame comes after every other ready stream's.
            _ready.Enqueue(stream);
        }

        return Http2Frames.HeaderLength + length;
    }

    /// <summary>Under the lock: the response's end, after its last data: trailers, or an empty DATA, with END_STREAM.</summary>
    private int End(Http2ServerStream stream)
    {
        var length = stream.Trailers.WrittenCount;
        if (length > 0)
        {
            _headerScratch.ResetWrittenCount();
            Http2FrameWriter.WriteHeaders(_headerScratch, stream.Id, stream.Trailers.WrittenSpan, endStream: true, _peerMaxFrameSize);
            _output.Write(_headerScratch.WrittenSpan);
        }
        else
        {
            Span<byte> header = stackalloc byte[Http2Frames.HeaderLength];
            Http2FrameWriter.WriteHeader(header, 0, Http2Frames.Data, Http2Frames.EndStream, stream.Id);
            _output.Write(header);
        }

        stream.LocalClosed = true;
        TryClose(stream);
        return Http2Frames.HeaderLength + length;
    }
}
