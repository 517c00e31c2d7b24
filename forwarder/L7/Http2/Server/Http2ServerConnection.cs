using System.Buffers;
using System.IO.Pipelines;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Forwarder.Runtime;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// The server side of one HTTP/2 connection (RFC 9113) over a duplex pipe: an accepted socket's
/// (on the epoll engine, its reads wake this connection inline), a TLS stream's, or a test's.
/// One loop reads and applies frames; each request stream, once its header block is whole and
/// valid, goes to an <see cref="IHttp2StreamHandler"/>; one writer sends what streams and the
/// reader queue, many frames per flush (<see cref="Http2ServerConnection"/>'s Output part).
/// </summary>
/// <remarks>
/// Stream state, windows and queued output are shared by the reader, the writer and handlers,
/// all under <see cref="_lock"/>; no handler code runs while it is held, except cancellation
/// callbacks registered on <see cref="Http2ServerStream.Aborted"/>.
/// </remarks>
internal sealed partial class Http2ServerConnection
{
    private const int RecentResets = 64;

    /// <summary>Pooled streams kept once the connection is idle and no burst needed more for <see cref="Http2ServerOptions.StreamPoolExpiry"/>.</summary>
    private const int IdlePoolSize = 4;

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IHttp2StreamHandler _handler;
    private readonly Http2ServerOptions _options;
    private readonly ConnectionTracker _clock;
    private readonly Http2FloodLimits _floods;
    private readonly Http2FrameReader _frames;
    private readonly int _maxHeaderBlockSize;
    private readonly HpackDecoder _decoder;
    private readonly HpackEncoder _encoder = new(maxTableSize: 0);
    private readonly Http2FieldTarget _target = new();
    private readonly Http2RequestHeaderValidator<Http2FieldTarget> _validator;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly Stack<Http2ServerStream> _pool = new();
    private readonly int[] _recentResets = new int[RecentResets];
    private int _recentResetNext;
    private Http2ReceiveWindow _connectionReceive;
    private Http2SendWindow _connectionSend = new(Http2Frames.DefaultWindowSize);
    private int _peerInitialWindow = Http2Frames.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frames.DefaultMaxFrameSize;
    private int _lastStreamId;
    private long _poolNeededAt;
    private bool _firstBlockDone;

    // The header block being received: HEADERS then CONTINUATION fragments, joined.
    private byte[] _block = [];
    private int _blockLength;
    private int _blockWireSize;
    private int _blockStream;
    private bool _blockEndStream;
    private bool _blockOpens;

    public Http2ServerConnection(IDuplexPipe transport, IHttp2StreamHandler handler, Http2ServerOptions options, ConnectionTracker clock)
    {
        _input = transport.Input;
        _output = transport.Output;
        if (options.InitialStreamWindowSize < Http2Frames.DefaultWindowSize || options.ConnectionWindowSize < Http2Frames.DefaultWindowSize)
        {
            // A client sends on the default window until it has our SETTINGS (RFC 9113 6.9.2): a smaller one would be broken by every client that does.
            throw new ArgumentException($"HTTP/2 receive windows must be at least {Http2Frames.DefaultWindowSize} bytes", nameof(options));
        }

        _handler = handler;
        _options = options;
        _clock = clock;
        _floods = new Http2FloodLimits(clock);
        _frames = new Http2FrameReader { MaxFrameSize = options.MaxFrameSize };

        // A header list the SETTINGS allow must fit on the wire (literals, and a frame header
        // per frame): a larger list is answered 431, never made a connection error.
        _maxHeaderBlockSize = Math.Max(options.MaxHeaderBlockSize, options.MaxHeaderListSize + Http2Frames.DefaultMaxFrameSize);
        _decoder = new HpackDecoder(options.HeaderTableSize, options.MaxHeaderListSize);
        _validator = new Http2RequestHeaderValidator<Http2FieldTarget>(_target);
        _connectionReceive = new Http2ReceiveWindow(options.ConnectionWindowSize);
        _timer = clock.CreateTimer(static state => ((Http2ServerConnection)state!).OnTimer(), this);
    }

    /// <summary>The error code of the GOAWAY this side sent; null while it sent none.</summary>
    public Http2ErrorCode? GoAwayCode { get; private set; }

    /// <summary>Serves the connection until either side ends it; never throws for what the peer does.</summary>
    public async Task RunAsync()
    {
        var writing = WriteLoopAsync();
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Http2ConnectionException e)
        {
            GoAway(e.Code, e.Message);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionResetException or InvalidOperationException)
        {
            // The transport ended under the reader: nothing more can be said to the peer.
        }
        finally
        {
            Close();
        }

        await writing.ConfigureAwait(false);
        _timer.Dispose();
        await _input.CompleteAsync().ConfigureAwait(false);
        await _output.CompleteAsync().ConfigureAwait(false);
        _block = ReturnBlock(_block);
    }

    internal int PooledStreams
    {
        get
        {
            lock (_lock)
            {
                return _pool.Count;
            }
        }
    }

    /// <summary>The header bytes the connection's pooled streams hold on to.</summary>
    internal long PooledHeaderBytes
    {
        get
        {
            lock (_lock)
            {
                return _pool.Sum(static s => (long)s.RequestHeaders.Capacity + s.RequestTrailers.Capacity);
            }
        }
    }

    /// <summary>Graceful close (RFC 9113 6.8): GOAWAY NO_ERROR naming the last stream taken; those finish, then the connection closes.</summary>
    public void Shutdown() => GoAway(Http2ErrorCode.NoError, null);

    private static byte[] ReturnBlock(byte[] block)
    {
        if (block.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(block);
        }

        return [];
    }

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

            ReadFrames(ref buffer);
            UpdateDeadlines(buffer);
            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || _closing)
            {
                return;
            }
        }
    }

    /// <summary>Applies every whole frame in the read; a stream error resets that stream and reading goes on.</summary>
    private void ReadFrames(ref ReadOnlySequence<byte> buffer)
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
