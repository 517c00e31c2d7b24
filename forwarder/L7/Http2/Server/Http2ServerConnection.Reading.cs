using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <content>Reading: the read loop, each frame applied in turn, and request bodies (DATA).</content>
internal sealed partial class Http2ServerConnection
{
    private async Task ReadLoopAsync()
    {
        lock (_lock)
        {
            Http2FrameWriter.WriteSettings(_control,
            [
                new(Http2SettingId.MaxConcurrentStreams, (uint)_options.MaxConcurrentStreams),
                new(Http2SettingId.InitialWindowSize, (uint)_options.InitialStreamWindowSize),
                new(Http2SettingId.MaxFrameSize, (uint)_options.MaxFrameSize),
                new(Http2SettingId.MaxHeaderListSize, (uint)_options.MaxHeaderListSize),
                new(Http2SettingId.HeaderTableSize, (uint)_options.HeaderTableSize),
                new(Http2SettingId.EnablePush, 0),
            ]);
            if (_options.ConnectionWindowSize > Http2Frames.DefaultWindowSize)
            {
                Http2FrameWriter.WriteWindowUpdate(_control, 0, _options.ConnectionWindowSize - Http2Frames.DefaultWindowSize);
            }

            _headerDeadline = _clock.DeadlineAfter(_options.HeaderTimeout);
            _settingsDeadline = _clock.DeadlineAfter(_options.SettingsAckTimeout);
            ScheduleTimer();
        }

        _signal.Set();
        var prefaceSeen = false;
        while (true)
        {
            var result = await _input.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            if (result.IsCanceled && DeadlinePassed())
            {
                return;
            }

            if (!prefaceSeen)
            {
                switch (Http2Preface.Check(buffer))
                {
                    case false:
                        throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "no HTTP/2 connection preface");
                    case null:
                        _input.AdvanceTo(buffer.Start, buffer.End);
                        if (result.IsCompleted)
                        {
                            return;
                        }

                        continue;
                }

                buffer = buffer.Slice(Http2Preface.Length);
                prefaceSeen = true;
            }

            var paused = ReadFrames(ref buffer);
            if (paused)
            {
                // Frames are left whole in the buffer: the next read returns them at once. The
                // deadlines stay as they were (the leftover is no header block under way).
                _input.AdvanceTo(buffer.Start);
                await ControlDrainedAsync().ConfigureAwait(false);
                if (_closing)
                {
                    return;
                }

                continue;
            }

            UpdateDeadlines(buffer);
            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || _closing)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Applies every whole frame in the read; a stream error resets that stream and reading goes
    /// on. True when it stopped early, output to the client backlogged (<see cref="ControlBacklogged"/>).
    /// </summary>
    private bool ReadFrames(ref ReadOnlySequence<byte> buffer)
    {
        lock (_lock)
        {
            _batching = true;
        }

        _handler.ReadStarted();
        try
        {
            while (!_closing)
            {
                if (ControlBacklogged)
                {
                    return true;
                }

                try
                {
                    if (!_frames.TryRead(ref buffer, out var frame))
                    {
                        break;
                    }

                    if (_floods.Count(frame.Header) is { } flood)
                    {
                        throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"{Metrics.Http2GoAwayReasons.Label(flood)}");
                    }

                    OnFrame(frame);
                }
                catch (Http2StreamException e)
                {
                    ResetStream(e.StreamId, e.Code);
                }
            }

            return false;
        }
        finally
        {
            _handler.ReadEnded();
            bool flush;
            lock (_lock)
            {
                _batching = false;
                flush = _flushWanted;
                _flushWanted = false;
            }

            if (flush)
            {
                _signal.Set();
            }
        }
    }

    private void OnFrame(in Http2Frame frame)
    {
        switch (frame.Type)
        {
            case Http2Frames.Data:
                OnData(frame);
                break;
            case Http2Frames.Headers:
                OnHeaders(frame);
                break;
            case Http2Frames.Continuation:
                AppendBlock(frame);
                break;
            case Http2Frames.RstStream:
                OnRstStream(frame);
                break;
            case Http2Frames.Settings:
                OnSettings(frame);
                break;
            case Http2Frames.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PUSH_PROMISE from a client");
            case Http2Frames.Ping when !frame.IsAck:
                lock (_lock)
                {
                    Http2FrameWriter.WritePing(_control, frame.PingData, ack: true);
                    RequestFlush();
                }

                break;
            case Http2Frames.GoAway:
                // The client opens no more streams; those open finish, then the connection closes.
                GoAway(Http2ErrorCode.NoError, null);
                break;
            case Http2Frames.WindowUpdate:
                OnWindowUpdate(frame);
                break;
        }
    }

    /// <summary>A stream the client has not opened yet: any frame but HEADERS (and PRIORITY) on it is a PROTOCOL_ERROR (RFC 9113 5.1).</summary>
    private void RequireNotIdle(in Http2Frame frame, string what)
    {
        if (frame.StreamId > _lastStreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"{what} on idle stream {frame.StreamId}");
        }
    }

    private void OnData(in Http2Frame frame)
    {
        RequireNotIdle(frame, "DATA");
        lock (_lock)
        {
            _connectionReceive.Receive(frame.FlowControlledLength, 0);

            // Connection credit goes back as the handler consumes the body (as Kestrel does), so
            // one connection's unread bodies are bounded by its window, not by streams x stream
            // window; what is not buffered for a handler (padding, a frame dropped or refused) at once.
            var data = (int)frame.Payload.Length;
            CreditConnection(frame.FlowControlledLength - data);
            if (!_streams.TryGetValue(frame.StreamId, out var stream) || stream.RemoteClosed)
            {
                CreditConnection(data);
                if (stream is null && RecentlyReset(frame.StreamId))
                {
                    return;
                }

                throw new Http2StreamException(frame.StreamId, Http2ErrorCode.StreamClosed, stream is null ? "DATA on a closed stream" : "DATA after END_STREAM");
            }

            try
            {
                stream.ReceiveWindow.Receive(frame.FlowControlledLength, frame.StreamId);
            }
            catch (Http2StreamException)
            {
                CreditConnection(data);
                throw;
            }

            if (frame.FlowControlledLength > data)
            {
                CreditStream(stream, frame.FlowControlledLength - data);
            }

            if (stream.ReaderDone)
            {
                // Nobody reads this body any more (the response may still run): its credit goes
                // back at once rather than piling up against the connection's window.
                CreditConnection(data);
                if (!frame.EndStream)
                {
                    CreditStream(stream, data);
                }
            }
            else
            {
                stream.Buffered += data;
                foreach (var segment in frame.Payload)
                {
                    stream.RequestWriter.Write(segment.Span);
                }

                // No pause threshold: this completes at once, and the handler's read resumes on the thread pool.
                _ = stream.RequestWriter.FlushAsync();
            }

            if (frame.EndStream)
            {
                stream.RemoteClosed = true;
                stream.RequestWriter.Complete();
                TryClose(stream);
            }
        }
    }
}
