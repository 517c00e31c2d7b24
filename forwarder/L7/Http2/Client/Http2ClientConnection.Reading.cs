using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The reader: one loop takes frames off the connection and turns them into stream events. A
/// stream it delivers to is held by an extra reference while the lock is let go, so a caller
/// disposing it meanwhile cannot recycle it under the reader's feet. Only this loop writes into
/// streams' body pipes (and completes them).
/// </summary>
internal sealed partial class Http2ClientConnection
{
    /// <summary>The dynamic table size this side allows the server (the default: no SETTINGS needed).</summary>
    private const int HpackDefaultTableSize = 4096;

    private readonly PipeReader _input;
    private readonly Http2FrameReader _reader = new();
    private readonly HpackDecoder _decoder;
    private readonly List<Http2ClientStream> _waking = [];
    private byte[] _block = [];
    private int _blockLength;
    private int _blockStream;
    private bool _blockEndStream;
    private bool _settingsSeen;
    private bool _goAwayReceived;
    private long _lastRead;
    private PendingAbort? _pendingAbort;

    /// <summary>The most a header block may take compressed before it is decoded: a flood of CONTINUATION stops here.</summary>
    private int MaxHeaderBlock => (2 * _options.MaxHeaderListSize) + Http2Frames.DefaultMaxFrameSize;

    private static Http2ConnectionException ProtocolError(string message) => new(Http2ErrorCode.ProtocolError, message);

    private async Task ReadAsync()
    {
        Exception? failure = null;
        Http2ErrorCode? goAway = null;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                Volatile.Write(ref _lastRead, _options.Time.GetTimestamp());
                var buffer = result.Buffer;
                lock (_gate)
                {
                    _batchDepth++;
                }

                try
                {
                    ReadFrames(ref buffer);
                }
                finally
                {
                    EndBatch();
                }

                _input.AdvanceTo(buffer.Start, buffer.End);
                PendingAbort? pending;
                lock (_gate)
                {
                    pending = _pendingAbort;
                }

                if (pending is not null)
                {
                    (failure, goAway) = (pending.Reason, pending.Code);
                    break;
                }

                if (result.IsCompleted)
                {
                    lock (_gate)
                    {
                        failure = _goAwayReceived && _active == 0 ? null
                            : new Http2ClientException("The server closed the connection.", Http2ErrorCode.ConnectError, canRetry: false);
                    }

                    break;
                }
            }
        }
        catch (Http2ConnectionException ex)
        {
            failure = new Http2ClientException($"The server broke HTTP/2: {ex.Message}", ex.Code, canRetry: false, ex);
            goAway = ex.Code;
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            failure = new Http2ClientException("The connection to the server failed.", Http2ErrorCode.ConnectError, canRetry: false, ex);
        }
        catch (Exception ex)
        {
            // A bug of this side's: the connection still ends, or its streams and DisposeAsync would wait forever.
            failure = new Http2ClientException("The upstream connection failed unexpectedly.", Http2ErrorCode.InternalError, canRetry: false, ex);
            goAway = Http2ErrorCode.InternalError;
        }

        await TerminateAsync(failure, goAway).ConfigureAwait(false);
    }

    private void ReadFrames(ref ReadOnlySequence<byte> buffer)
    {
        while (true)
        {
            try
            {
                if (!_reader.TryRead(ref buffer, out var frame))
                {
                    return;
                }

                OnFrame(frame);
            }
            catch (Http2StreamException ex)
            {
                // The frame is consumed; only its stream is harmed.
                ResetStream(ex.StreamId, ex.Code, ex.Message);
            }
        }
    }

    private void OnFrame(in Http2Frame frame)
    {
        if (!_settingsSeen && frame.Type != Http2Frames.Settings)
        {
            throw ProtocolError("the server's preface is not a SETTINGS frame");
        }

        switch (frame.Type)
        {
            case Http2Frames.Data:
                OnData(frame);
                break;
            case Http2Frames.Headers:
                OnHeaders(frame);
                break;
            case Http2Frames.Continuation:
                OnContinuation(frame);
                break;
            case Http2Frames.RstStream:
                OnRstStream(frame);
                break;
            case Http2Frames.Settings:
                OnSettings(frame);
                break;
            case Http2Frames.Ping:
                OnPing(frame);
                break;
            case Http2Frames.GoAway:
                OnGoAway(frame);
                break;
            case Http2Frames.WindowUpdate:
                OnWindowUpdate(frame);
                break;
            case Http2Frames.PushPromise:
                throw ProtocolError("PUSH_PROMISE, though this side disabled push");
        }
    }

    /// <summary>Under the lock: a frame on a stream this side never opened (or a server-side one: push is off) is a connection error.</summary>
    private void RequireOpened(long streamId)
    {
        if ((streamId & 1) == 0 || streamId >= _nextStreamId)
        {
            throw ProtocolError($"a frame on stream {streamId}, which this side never opened");
        }
    }

    /// <summary>Under the lock: the open stream <paramref name="streamId"/>, held for delivery, or null.</summary>
    private Http2ClientStream? Hold(int streamId)
    {
        RequireOpened(streamId);
        if (_streams.TryGetValue(streamId, out var stream))
        {
            stream.AddReference();
            return stream;
        }

        return null;
    }

    private void OnData(in Http2Frame frame)
    {
        var id = frame.StreamId;
        var length = frame.FlowControlledLength;
        var data = (int)frame.Payload.Length;
        Http2ClientStream? stream;
        bool ended;
        lock (_gate)
        {
            _receiveWindow.Receive(length, 0);
            stream = Hold(id);
            if (stream is null || stream.RemoteEnded || !stream.HeadReceived)
            {
                // Data nobody will read: the connection's credit goes back at once.
                ConsumedOnConnection(length);
                stream?.Release();
                if (stream is not null)
                {
                    throw new Http2StreamException(id, stream.RemoteEnded ? Http2ErrorCode.StreamClosed : Http2ErrorCode.ProtocolError, "DATA outside a response body");
                }

                return;
            }

            try
            {
                stream.ReceiveWindow.Receive(length, id);
            }
            catch (Http2StreamException)
            {
                ConsumedOnConnection(length);
                stream.Release();
                throw;
            }

            if (length > data)
            {
                // Padding is consumed on arrival.
                ConsumedOnConnection(length - data);
                if (stream.ReceiveWindow.Consume(length - data) is > 0 and var increment)
                {
                    Http2FrameWriter.WriteWindowUpdate(ControlOut, id, increment);
                }
            }

            stream.Buffered += data;
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
        Http2ClientStream? stream;
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

    private void OnHead(Http2ClientStream stream, bool endStream)
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
            stream.HeadSignal.Set();
        }
    }

    private void OnTrailers(Http2ClientStream stream, bool endStream)
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

    private void OnRstStream(in Http2Frame frame)
    {
        var code = frame.RstStreamErrorCode;
        Http2ClientStream? stream;
        lock (_gate)
        {
            stream = Hold(frame.StreamId);
            if (stream is null)
            {
                return;
            }

            stream.Error ??= new Http2ClientException($"The server reset stream {stream.Id} ({code}).", code, canRetry: code == Http2ErrorCode.RefusedStream);
        }

        FailStream(stream);
    }

    /// <summary>This side resets a stream the server harmed (a stream error).</summary>
    private void ResetStream(int id, Http2ErrorCode code, string reason)
    {
        Http2ClientStream? stream;
        lock (_gate)
        {
            Http2FrameWriter.WriteRstStream(ControlOut, id, code);
            stream = _streams.GetValueOrDefault(id);
            if (stream is null)
            {
                return;
            }

            stream.AddReference();
            stream.Error ??= new Http2ClientException($"Stream {id} failed: {reason}.", code, canRetry: false);
        }

        FailStream(stream);
    }

    /// <summary>A held stream whose <see cref="Http2ClientStream.Error"/> is set: out of the table, its body and waits ended with the error, then let go.</summary>
    private void FailStream(Http2ClientStream stream)
    {
        bool bodyOpen;
        lock (_gate)
        {
            bodyOpen = !stream.RemoteEnded;
            stream.RemoteEnded = true;
            CloseStream(stream);
        }

        if (bodyOpen)
        {
            stream.Body.Writer.Complete(stream.Error);
        }

        WakeWithError(stream);
        stream.Release();
    }

    private void OnSettings(in Http2Frame frame)
    {
        if (frame.IsAck)
        {
            lock (_gate)
            {
                _settingsAcked = true;
            }

            return;
        }

        lock (_gate)
        {
            var windowGrew = false;
            foreach (var setting in frame.Settings)
            {
                switch (setting.Id)
                {
                    case Http2SettingId.HeaderTableSize:
                        _encoder.SetPeerMaxTableSize((int)Math.Min(setting.Value, int.MaxValue));
                        break;
                    case Http2SettingId.MaxConcurrentStreams:
                        _peerMaxStreams = (int)Math.Min(setting.Value, int.MaxValue);
                        break;
                    case Http2SettingId.MaxFrameSize:
                        _peerMaxFrameSize = (int)setting.Value;
                        break;
                    case Http2SettingId.InitialWindowSize:
                        var delta = (long)setting.Value - _peerInitialWindow;
                        _peerInitialWindow = (int)setting.Value;
                        foreach (var stream in _streams.Values)
                        {
                            stream.SendWindow.Adjust(delta);
                        }

                        windowGrew |= delta > 0;
                        break;
                }
            }

            Http2FrameWriter.WriteSettingsAck(ControlOut);
            _settingsSeen = true;
            if (windowGrew)
            {
                TakeWindowWaiters(null);
            }

            for (var free = _peerMaxStreams - _active; free > 0 && _openWaiters.TryDequeue(out var waiter);)
            {
                if (waiter.TrySetResult())
                {
                    free--;
                }
            }
        }

        _peerSettings.TrySetResult();
        WakeWindowWaiters();
    }

    private void OnPing(in Http2Frame frame)
    {
        if (!frame.IsAck)
        {
            lock (_gate)
            {
                Http2FrameWriter.WritePing(ControlOut, frame.PingData, ack: true);
            }

            return;
        }

        PingAnswered(frame.PingData);
    }

    private void OnGoAway(in Http2Frame frame)
    {
        var last = frame.GoAwayLastStreamId;
        var code = frame.GoAwayErrorCode;
        var debug = Encoding.ASCII.GetString(frame.GoAwayDebugData.Length > 256 ? frame.GoAwayDebugData.Slice(0, 256) : frame.GoAwayDebugData);
        List<Http2ClientStream> refused = [];
        lock (_gate)
        {
            _goAwayReceived = true;
            _draining = true;
            SlotsChanged?.Invoke();
            if (code != Http2ErrorCode.NoError)
            {
                Failure ??= new Http2ClientException($"The server sent GOAWAY {code}: {debug}", code, canRetry: false);
            }

            foreach (var stream in _streams.Values)
            {
                if (stream.Id > last)
                {
                    stream.AddReference();
                    stream.Error ??= new Http2ClientException($"The server went away (GOAWAY {code}) without processing stream {stream.Id}.", Http2ErrorCode.RefusedStream, canRetry: true);
                    refused.Add(stream);
                }
            }

            if (_active == refused.Count)
            {
                _pendingAbort ??= new PendingAbort(null, Http2ErrorCode.NoError);
            }
        }

        foreach (var stream in refused)
        {
            FailStream(stream);
        }

        FailOpenWaiters();
    }

    private void OnWindowUpdate(in Http2Frame frame)
    {
        lock (_gate)
        {
            if (frame.StreamId == 0)
            {
                _sendWindow.Credit(frame.WindowIncrement, 0);
                TakeWindowWaiters(null);
            }
            else
            {
                RequireOpened(frame.StreamId);
                if (!_streams.TryGetValue(frame.StreamId, out var stream))
                {
                    return;
                }

                stream.SendWindow.Credit(frame.WindowIncrement, frame.StreamId);
                TakeWindowWaiters(stream);
            }
        }

        WakeWindowWaiters();
    }

    /// <summary>Under the lock: moves the streams waiting for send credit (all, or just <paramref name="only"/>) to be woken once the lock is let go.</summary>
    private void TakeWindowWaiters(Http2ClientStream? only)
    {
        if (only is not null)
        {
            if (only.WindowWaiting)
            {
                only.WindowWaiting = false;
                _windowWaiters.Remove(only);
                _waking.Add(only);
            }

            return;
        }

        foreach (var stream in _windowWaiters)
        {
            stream.WindowWaiting = false;
            _waking.Add(stream);
        }

        _windowWaiters.Clear();
    }

    /// <summary>On the reader, outside the lock: wakes the writers <see cref="TakeWindowWaiters"/> picked; they look at their windows again.</summary>
    private void WakeWindowWaiters()
    {
        foreach (var stream in _waking)
        {
            stream.WindowSignal.Set();
        }

        _waking.Clear();
    }

    /// <summary>On the reader, once it has stopped: every stream and waiting opener fails, the GOAWAY goes out, the connection closes.</summary>
    private async Task TerminateAsync(Exception? failure, Http2ErrorCode? goAway)
    {
        List<Http2ClientStream> streams;
        lock (_gate)
        {
            _closed = true;
            _draining = true;
            Failure ??= failure;
            SlotsChanged?.Invoke();
            streams = [.. _streams.Values];
            foreach (var stream in streams)
            {
                stream.AddReference();
                stream.Error ??= failure ?? new Http2ClientException("The upstream connection closed.", Http2ErrorCode.ConnectError, canRetry: false);
            }

            _free.Clear();
        }

        StopTimer();
        foreach (var stream in streams)
        {
            FailStream(stream);
        }

        FailOpenWaiters();
        PingAnswered(null);
        if (!await CloseOutputAsync(goAway).ConfigureAwait(false))
        {
            // Disposing waits for the transport's sender, which a server that reads nothing holds.
            _connection.Abort(new ConnectionAbortedException("The server stopped reading."));
        }

        await _input.CompleteAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }

    private sealed record PendingAbort(Exception? Reason, Http2ErrorCode? Code);

    /// <summary>Takes a header block nobody wants.</summary>
    private struct DiscardSink : IHpackSink
    {
        public readonly void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
        }
    }
}
