using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Server;

/// <summary>Stream life: opening, flow-control credit, resets both ways, closing and pooling.</summary>
internal sealed partial class Http2ServerConnection
{
    /// <param name="refusal">A status to answer at once (431: header list too large; 400: a field value Kestrel would refuse), or 0.</param>
    private void OpenStream(int id, int refusal, string? malformed)
    {
        Http2ServerStream? stream = null;
        lock (_lock)
        {
            if (_goAwaySent)
            {
                // RFC 9113 6.8: streams above the GOAWAY's last stream id are ignored.
                return;
            }

            if (_streams.Count >= _options.MaxConcurrentStreams)
            {
                throw new Http2StreamException(id, Http2ErrorCode.RefusedStream, "over MAX_CONCURRENT_STREAMS");
            }

            if (malformed is not null)
            {
                throw new Http2StreamException(id, Http2ErrorCode.ProtocolError, malformed);
            }

            if (refusal != 0)
            {
                // RFC 9113 10.5.1: the block was decoded (the table is in step), so the request can be answered.
                // Reset first: BeginBlock may write a dynamic table size update the block must start with.
                _headerScratch.ResetWrittenCount();
                _encoder.BeginBlock(_headerScratch);
                _encoder.Encode(":status"u8, refusal == 431 ? "431"u8 : "400"u8, _headerScratch);
                Http2FrameWriter.WriteHeaders(_control, id, _headerScratch.WrittenSpan, endStream: true, _peerMaxFrameSize);
                _headerScratch.ResetWrittenCount();
                if (!_blockEndStream)
                {
                    Http2FrameWriter.WriteRstStream(_control, id, Http2ErrorCode.NoError);
                }

                RememberReset(id);
                RequestFlush();
            }
            else
            {
                stream = Take(id);
            }
        }

        if (stream is null)
        {
            // Outside the lock: the handler counts and logs it (no field value: that is the client's data).
            _handler.Refused(refusal, refusal == 431 ? "header list over SETTINGS_MAX_HEADER_LIST_SIZE" : "a field value with a control character");
            return;
        }

        stream.Start(_handler);
    }

    /// <summary>Under the lock: a pooled (or new) stream, open with the block just decoded as its request head.</summary>
    private Http2ServerStream Take(int id)
    {
        var stream = _pool.Count > 0 ? _pool.Pop() : new Http2ServerStream(this, _options);
        var filled = _target.Current;
        _target.Current = stream.RequestHeaders;
        stream.RequestHeaders = filled;
        stream.Open(id, _options.InitialStreamWindowSize, _peerInitialWindow);
        _streams.Add(id, stream);
        if (_streams.Count > IdlePoolSize)
        {
            _poolNeededAt = Environment.TickCount64;
        }

        _idleDeadline = 0;
        if (_blockEndStream)
        {
            stream.RemoteClosed = true;
            stream.RequestWriter.Complete();
        }

        return stream;
    }

    private void OnRstStream(in Http2Frame frame)
    {
        RequireNotIdle(frame, "RST_STREAM");
        lock (_lock)
        {
            if (_streams.TryGetValue(frame.StreamId, out var stream))
            {
                RememberReset(frame.StreamId);
                AbortStream(stream);
            }
        }
    }

    private void OnWindowUpdate(in Http2Frame frame)
    {
        lock (_lock)
        {
            if (frame.StreamId == 0)
            {
                _connectionSend.Credit(frame.WindowIncrement, 0);
                RequestFlush();
                return;
            }

            RequireNotIdle(frame, "WINDOW_UPDATE");
            if (_streams.TryGetValue(frame.StreamId, out var stream))
            {
                stream.SendWindow.Credit(frame.WindowIncrement, frame.StreamId);
                Enqueue(stream);
            }
        }
    }

    private void OnSettings(in Http2Frame frame)
    {
        lock (_lock)
        {
            if (frame.IsAck)
            {
                _settingsDeadline = 0;
                return;
            }

            foreach (var setting in frame.Settings)
            {
                switch (setting.Id)
                {
                    case Http2SettingId.InitialWindowSize:
                        var delta = (long)setting.Value - _peerInitialWindow;
                        _peerInitialWindow = (int)setting.Value;
                        foreach (var stream in _streams.Values)
                        {
                            stream.SendWindow.Adjust(delta);
                            Enqueue(stream);
                        }

                        break;
                    case Http2SettingId.MaxFrameSize:
                        _peerMaxFrameSize = (int)setting.Value;
                        break;
                    case Http2SettingId.HeaderTableSize:
                        _encoder.SetPeerMaxTableSize((int)Math.Min(setting.Value, int.MaxValue));
                        break;
                }
            }

            Http2FrameWriter.WriteSettingsAck(_control);
            RequestFlush();
        }
    }

    /// <summary>A stream error this side found: RST_STREAM with its code; the stream, if open, is over.</summary>
    private void ResetStream(int id, Http2ErrorCode code)
    {
        lock (_lock)
        {
            Http2FrameWriter.WriteRstStream(_control, id, code);
            RememberReset(id);
            RequestFlush();
            if (_streams.TryGetValue(id, out var stream))
            {
                AbortStream(stream);
            }
        }
    }

    /// <summary>The handler gave up the stream with RST_STREAM.</summary>
    internal void ResetByHandler(Http2ServerStream stream, Http2ErrorCode code)
    {
        lock (_lock)
        {
            if (stream.Active)
            {
                ResetStream(stream.Id, code);
            }
        }

        FlushIfWanted();
    }

    private void RememberReset(int id)
    {
        _recentResets[_recentResetNext] = id;
        _recentResetNext = (_recentResetNext + 1) % RecentResets;
    }

    /// <summary>
    /// Reset streams the peer may still send frames on (they crossed the RST_STREAM): those are
    /// ignored (RFC 9113 5.4.2), not treated as frames on a stream closed long ago.
    /// </summary>
    private bool RecentlyReset(int id) => Array.IndexOf(_recentResets, id) >= 0;

    private void AbortStream(Http2ServerStream stream)
    {
        stream.Abort();
        Remove(stream);
    }

    /// <summary>The handler advanced past <paramref name="length"/> bytes of body: credit the stream's window as it refills.</summary>
    internal void RequestBodyConsumed(Http2ServerStream stream, int length)
    {
        lock (_lock)
        {
            if (stream.Active)
            {
                // Past Remove, what was left unread went back to the connection already.
                stream.Buffered -= length;
                CreditConnection(length);
                if (!stream.RemoteClosed)
                {
                    CreditStream(stream, length);
                }
            }
        }

        // The WINDOW_UPDATE must go now: the peer may be waiting for it, with nothing else to wake the writer.
        FlushIfWanted();
    }

    /// <summary>The handler completed its reader: what it left unread, and any DATA still to come, goes back to the peer at once.</summary>
    internal void RequestBodyAbandoned(Http2ServerStream stream)
    {
        lock (_lock)
        {
            if (!stream.Active || stream.ReaderDone)
            {
                return;
            }

            stream.ReaderDone = true;
            CreditConnection(stream.Buffered);
            if (!stream.RemoteClosed)
            {
                CreditStream(stream, stream.Buffered);
            }

            stream.Buffered = 0;
        }

        FlushIfWanted();
    }

    private void CreditConnection(int length)
    {
        if (length > 0 && _connectionReceive.Consume(length) is var increment and > 0)
        {
            Http2FrameWriter.WriteWindowUpdate(_control, 0, increment);
            RequestFlush();
        }
    }

    private void CreditStream(Http2ServerStream stream, int length)
    {
        var increment = stream.ReceiveWindow.Consume(length);
        if (increment > 0)
        {
            Http2FrameWriter.WriteWindowUpdate(_control, stream.Id, increment);
            RequestFlush();
        }
    }

    internal void HandlerCompleted(Http2ServerStream stream, Exception? failure)
    {
        lock (_lock)
        {
            if (stream.Active && !stream.Ending && !stream.LocalClosed)
            {
                if (failure is null && stream.HeadersSent)
                {
                    stream.Ending = true;
                    Enqueue(stream);
                }
                else
                {
                    ResetStream(stream.Id, Http2ErrorCode.InternalError);
                }
            }

            stream.HandlerDone = true;
            TryRecycle(stream);
        }

        FlushIfWanted();
    }

    /// <summary>
    /// Under the lock: closes the stream once both sides ended it. A response that ended while
    /// the request still comes is followed by RST_STREAM NO_ERROR (RFC 9113 8.1).
    /// </summary>
    private void TryClose(Http2ServerStream stream)
    {
        if (!stream.Active || !stream.LocalClosed)
        {
            return;
        }

        if (!stream.RemoteClosed)
        {
            Http2FrameWriter.WriteRstStream(_control, stream.Id, Http2ErrorCode.NoError);
            RememberReset(stream.Id);
            RequestFlush();
            stream.RemoteClosed = true;
            stream.RequestWriter.Complete();
        }

        Remove(stream);
    }

    private void Remove(Http2ServerStream stream)
    {
        if (!stream.Active)
        {
            return;
        }

        stream.Active = false;
        _streams.Remove(stream.Id);

        // Body the handler never read: the connection's credit comes back with the stream.
        CreditConnection(stream.Buffered);
        stream.Buffered = 0;
        TryRecycle(stream);
        if (_streams.Count == 0)
        {
            if (_goAwaySent)
            {
                Drained();
            }
            else if (_headerDeadline == 0 && _idleDeadline == 0)
            {
                _idleDeadline = _clock.DeadlineAfter(_options.KeepAliveTimeout);
                ScheduleTimer();
            }
        }
    }

    private void TryRecycle(Http2ServerStream stream)
    {
        if (stream.Active || !stream.HandlerDone || stream.Queued)
        {
            return;
        }

        // Done with: marked so a late call finds it closed.
        stream.HandlerDone = false;
        stream.Recycle();
        _pool.Push(stream);
        ExpirePool();
    }

    /// <summary>
    /// Under the lock: once idle, a past burst's streams are not kept for the connection's life
    /// (Kestrel expires its pooled streams too); before the expiry, the timer comes back for them,
    /// as no stream may recycle again for the connection's life.
    /// </summary>
    private void ExpirePool()
    {
        if (_streams.Count > 0 || _pool.Count <= IdlePoolSize)
        {
            return;
        }

        var left = (long)_options.StreamPoolExpiry.TotalMilliseconds - (Environment.TickCount64 - _poolNeededAt);
        if (left > 0)
        {
            if (_poolDeadline == 0)
            {
                _poolDeadline = _clock.DeadlineAfter(TimeSpan.FromMilliseconds(left));
                ScheduleTimer();
            }

            return;
        }

        while (_pool.Count > IdlePoolSize)
        {
            _pool.Pop().Discard();
        }
    }
}
