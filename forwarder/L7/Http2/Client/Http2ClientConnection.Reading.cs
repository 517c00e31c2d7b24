using System.Buffers;
using System.IO.Pipelines;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The reader: one loop takes frames off the connection and hands each to its handler (the
/// response's in Response.cs, resets and GOAWAY in Termination.cs, WINDOW_UPDATE in Credit.cs). A
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
    private readonly List<Http2ClientExchange> _waking = [];

    /// <summary>On the reader only: the streams whose waiting caller gets its response head at the read's end.</summary>
    private readonly List<Http2ClientExchange> _headWakes = [];
    private bool _settingsSeen;
    private bool _goAwayReceived;
    private long _lastRead;
    private PendingAbort? _pendingAbort;

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
                    // Within the batch: what the woken callers write upstream (a reset, credit) leaves in its flush.
                    WakeHeads();
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

    /// <summary>Wakes the callers whose response head came in this read (their continuations run inline, one after another).</summary>
    private void WakeHeads()
    {
        // By index, and cleared after: a woken caller runs on but never adds a head wake (only the reader does).
        for (var i = 0; i < _headWakes.Count; i++)
        {
            _headWakes[i].HeadSignal.Set();
        }

        _headWakes.Clear();
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
    private Http2ClientExchange? Hold(int streamId)
    {
        RequireOpened(streamId);
        if (_streams.TryGetValue(streamId, out var stream))
        {
            stream.AddReference();
            return stream;
        }

        return null;
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
}
