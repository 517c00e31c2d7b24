using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// One multiplexed HTTP/2 connection to an upstream (RFC 9113), h2c with prior knowledge or h2
/// inside TLS: the caller has made the connection, this speaks the protocol on it. Streams open
/// with odd, rising ids up to the server's SETTINGS_MAX_CONCURRENT_STREAMS (further opens wait
/// for one to close); flow control is kept both ways at both levels; PING keeps an idle connection
/// alive and measures the round trip; GOAWAY fails the streams the server did not take as
/// retryable and drains the rest. One reader runs the receive side (Reading.cs); frames leave
/// through a writer that puts everything written while a flush or a batch is under way into the
/// next single flush (Writing.cs).
/// </summary>
/// <remarks>
/// All protocol state sits under one lock. Nothing that can run a caller's code (a signal, a
/// body pipe's flush: their continuations run inline) is done while holding it.
/// </remarks>
internal sealed partial class Http2ClientConnection : IAsyncDisposable
{
    private readonly ConnectionContext _connection;
    private readonly Http2ClientOptions _options;
    private readonly object _gate = new();
    private readonly Dictionary<int, Http2ClientStream> _streams = [];
    private readonly Stack<Http2ClientStream> _free = new();
    private readonly Queue<TaskCompletionSource> _openWaiters = new();
    private readonly List<Http2ClientStream> _windowWaiters = [];
    private readonly HpackEncoder _encoder = new();
    private readonly ArrayBufferWriter<byte> _headerBlock = new(1024);
    private readonly TaskCompletionSource _peerSettings = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Http2SendWindow _sendWindow = new(Http2Frames.DefaultWindowSize);
    private Http2ReceiveWindow _receiveWindow;
    private int _peerInitialWindow = Http2Frames.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frames.DefaultMaxFrameSize;
    private int _peerMaxStreams = int.MaxValue;
    private long _nextStreamId = 1;
    private int _active;
    private bool _draining;
    private bool _closed;
    private bool _started;

    public Http2ClientConnection(ConnectionContext connection, Http2ClientOptions options)
    {
        _connection = connection;
        _options = options;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        _receiveWindow = new Http2ReceiveWindow(options.ConnectionWindow);
        _decoder = new HpackDecoder(HpackDefaultTableSize, options.MaxHeaderListSize);
        _lastRead = options.Time.GetTimestamp();
        _idleSince = _lastRead;
    }

    /// <summary>Streams open now (counted against the server's limit).</summary>
    public int ActiveStreams => Volatile.Read(ref _active);

    /// <summary>The server's SETTINGS_MAX_CONCURRENT_STREAMS (int.MaxValue when it set none).</summary>
    public int MaxConcurrentStreams => Volatile.Read(ref _peerMaxStreams);

    /// <summary>Takes new streams: neither side said GOAWAY, ids are left, and it has not ended.</summary>
    public bool IsUsable
    {
        get
        {
            lock (_gate)
            {
                return !_closed && !_draining;
            }
        }
    }

    /// <summary>Usable and below the server's stream limit: a stream opens now rather than waiting.</summary>
    public bool HasCapacity
    {
        get
        {
            lock (_gate)
            {
                return !_closed && !_draining && _active < _peerMaxStreams;
            }
        }
    }

    /// <summary>Called (under the connection's lock: it must not block or lock) whenever a stream ends and frees a slot, or the connection stops taking streams.</summary>
    public Action? SlotsChanged { get; init; }

    /// <summary>Completes when the connection has ended, for whatever reason.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Why the connection ended, when it was not a clean close.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>
    /// Sends the preface and this side's SETTINGS, starts reading, and waits for the server's
    /// SETTINGS (its limits apply to the first stream already).
    /// </summary>
    /// <exception cref="Http2ClientException">The server sent no SETTINGS in time, or broke the protocol, or closed.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var output = Out;
            output.Write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8);
            Http2FrameWriter.WriteSettings(output,
            [
                new(Http2SettingId.EnablePush, 0),
                new(Http2SettingId.InitialWindowSize, (uint)_options.StreamWindow),
                new(Http2SettingId.MaxHeaderListSize, (uint)_options.MaxHeaderListSize),
            ]);
            if (_options.ConnectionWindow > Http2Frames.DefaultWindowSize)
            {
                Http2FrameWriter.WriteWindowUpdate(output, 0, _options.ConnectionWindow - Http2Frames.DefaultWindowSize);
            }

            _settingsSentAt = _options.Time.GetTimestamp();
        }

        Flush();
        _started = true;
        _ = ReadAsync();
        StartTimer();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.SettingsTimeout);
        try
        {
            await Task.WhenAny(_peerSettings.Task, _completion.Task).WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Abort(null, Http2ErrorCode.Cancel);
            await _completion.Task.ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException)
        {
            Abort(new Http2ClientException("The server sent no SETTINGS in time.", Http2ErrorCode.SettingsTimeout, canRetry: true), Http2ErrorCode.SettingsTimeout);
        }

        if (!_peerSettings.Task.IsCompleted)
        {
            await _completion.Task.ConfigureAwait(false);
            throw Failure ?? new Http2ClientException("The connection closed before the server's SETTINGS.", Http2ErrorCode.ConnectError, canRetry: true);
        }
    }

    /// <summary>
    /// Opens a stream and sends the request head (<paramref name="head"/>: pseudo-headers first,
    /// names lowercase, as RFC 9113 8.3 wants; not checked here). With <paramref name="endStream"/>
    /// the request has no body. At the server's stream limit this waits for a stream to close.
    /// Cancelling <paramref name="cancellationToken"/> later resets the stream (RST_STREAM CANCEL).
    /// </summary>
    /// <exception cref="Http2ClientException">The connection takes no new streams (<see cref="Http2ClientException.CanRetry"/>: try another).</exception>
    public ValueTask<Http2ClientStream> OpenStreamAsync(Http2HeaderList head, bool endStream, CancellationToken cancellationToken = default)
    {
        Http2ClientStream? stream;
        Http2ClientException? refusal;
        TaskCompletionSource? waiter = null;
        lock (_gate)
        {
            if (!TryOpen(head, endStream, cancellationToken, out stream, out refusal) && refusal is null)
            {
                waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _openWaiters.Enqueue(waiter);
            }
        }

        if (stream is not null)
        {
            Flush();
            return ValueTask.FromResult(stream);
        }

        return refusal is not null ? ValueTask.FromException<Http2ClientStream>(refusal) : OpenWhenFreeAsync(waiter!, head, endStream, cancellationToken);
    }

    /// <summary>Test hook: the next stream takes id <paramref name="id"/> (odd), to reach the end of the id space.</summary>
    internal void SkipStreamIdsTo(int id)
    {
        lock (_gate)
        {
            _nextStreamId = id;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_started)
        {
            // Never started: there is no reader to end it.
            await TerminateAsync(null, goAway: null).ConfigureAwait(false);
            return;
        }

        Abort(null, Http2ErrorCode.NoError);
        await _completion.Task.ConfigureAwait(false);
    }

    /// <summary>Stops taking streams; ends the connection (GOAWAY NO_ERROR, then FIN) once those open have finished.</summary>
    public void Drain()
    {
        bool idle;
        lock (_gate)
        {
            _draining = true;
            idle = _active == 0;
        }

        FailOpenWaiters();
        if (idle)
        {
            Abort(null, Http2ErrorCode.NoError);
        }
    }

    private async ValueTask<Http2ClientStream> OpenWhenFreeAsync(TaskCompletionSource waiter, Http2HeaderList head, bool endStream, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                await waiter.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!waiter.TrySetCanceled())
            {
                // Woken as it gave up: the slot it was handed goes to the next opener.
                lock (_gate)
                {
                    WakeOpener();
                }

                throw;
            }

            Http2ClientStream? stream;
            Http2ClientException? refusal;
            lock (_gate)
            {
                if (!TryOpen(head, endStream, cancellationToken, out stream, out refusal) && refusal is null)
                {
                    // Another opener took the slot first: wait again.
                    waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _openWaiters.Enqueue(waiter);
                    continue;
                }
            }

            if (refusal is not null)
            {
                throw refusal;
            }

            Flush();
            return stream!;
        }
    }

    /// <summary>Under the lock: opens a stream if a slot is free; otherwise null and, unless the caller may wait, why not.</summary>
    private bool TryOpen(Http2HeaderList head, bool endStream, CancellationToken cancellationToken, out Http2ClientStream? stream, out Http2ClientException? refusal)
    {
        stream = null;
        refusal = null;
        if (_closed || _draining)
        {
            refusal = new Http2ClientException("The upstream connection takes no new streams.", Http2ErrorCode.RefusedStream, canRetry: true, Failure);
            return false;
        }

        if (_active >= _peerMaxStreams)
        {
            return false;
        }

        var id = (int)_nextStreamId;
        _nextStreamId += 2;
        if (_nextStreamId > int.MaxValue)
        {
            // Stream ids are spent: this is the last stream, those open finish, openers go elsewhere.
            _draining = true;
            while (_openWaiters.TryDequeue(out var waiter))
            {
                waiter.TrySetResult();
            }

            SlotsChanged?.Invoke();
        }

        stream = _free.Count > 0 ? _free.Pop() : new Http2ClientStream(this, _options);
        stream.Open(id, _peerInitialWindow, _options.StreamWindow, cancellationToken);
        stream.LocalEnded = endStream;
        _streams[id] = stream;
        _active++;
        WriteHeaderBlock(id, head, endStream);
        return true;
    }

    private void WriteHeaderBlock(int streamId, Http2HeaderList fields, bool endStream)
    {
        _headerBlock.ResetWrittenCount();
        _encoder.BeginBlock(_headerBlock);
        for (var i = 0; i < fields.Count; i++)
        {
            _encoder.Encode(fields.Name(i), fields.Value(i), _headerBlock);
        }

        Http2FrameWriter.WriteHeaders(Out, streamId, _headerBlock.WrittenSpan, endStream, _peerMaxFrameSize);
    }

    /// <summary>The caller waits on the response head; completes at once if it is in, or fails if the stream did.</summary>
    internal ValueTask WaitForHeadAsync(Http2ClientStream stream)
    {
        lock (_gate)
        {
            if (stream.HeadReceived)
            {
                return ValueTask.CompletedTask;
            }

            if (stream.Error is { } error)
            {
                return ValueTask.FromException(error);
            }

            stream.HeadWaiting = true;
            return stream.HeadSignal.Arm();
        }
    }

    internal ValueTask WriteTrailers(Http2ClientStream stream, Http2HeaderList trailers)
    {
        lock (_gate)
        {
            if (Unwritable(stream) is { } error)
            {
                return ValueTask.FromException(error);
            }

            stream.LocalEnded = true;
            WriteHeaderBlock(stream.Id, trailers, endStream: true);
            CloseIfEnded(stream);
        }

        Flush();
        return ValueTask.CompletedTask;
    }

    /// <summary>Sends DATA as far as both windows allow; waits for credit for the rest.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask WriteDataAsync(Http2ClientStream stream, ReadOnlyMemory<byte> data, bool endStream)
    {
        while (true)
        {
            var wait = default(ValueTask);
            bool done;
            lock (_gate)
            {
                if (Unwritable(stream) is { } error)
                {
                    throw error;
                }

                done = TryWriteData(stream, ref data, endStream);
                if (!done)
                {
                    stream.WindowWaiting = true;
                    _windowWaiters.Add(stream);
                    wait = stream.WindowSignal.Arm();
                }
            }

            Flush();
            if (done)
            {
                return;
            }

            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>Under the lock: writes DATA frames while both windows have credit; true once all is sent.</summary>
    private bool TryWriteData(Http2ClientStream stream, ref ReadOnlyMemory<byte> data, bool endStream)
    {
        if (data.IsEmpty && endStream)
        {
            // END_STREAM alone: an empty DATA frame, which flow control does not count.
            Http2FrameWriter.WriteData(Out, stream.Id, [], endStream: true);
        }

        while (!data.IsEmpty)
        {
            var granted = (int)Math.Min(Math.Min(data.Length, _peerMaxFrameSize), Math.Min(_sendWindow.Available, stream.SendWindow.Available));
            if (granted <= 0)
            {
                return false;
            }

            _sendWindow.Take(granted);
            stream.SendWindow.Take(granted);
            Http2FrameWriter.WriteData(Out, stream.Id, data.Span[..granted], endStream && granted == data.Length);
            data = data[granted..];
        }

        if (endStream)
        {
            stream.LocalEnded = true;
            CloseIfEnded(stream);
        }

        return true;
    }

    /// <summary>The caller consumed <paramref name="length"/> body bytes: credit for the stream and the connection, sent once half a window is due.</summary>
    internal void Consumed(Http2ClientStream stream, int length)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            if (!stream.Closed && !stream.RemoteEnded && stream.ReceiveWindow.Consume(length) is > 0 and var streamIncrement)
            {
                Http2FrameWriter.WriteWindowUpdate(Out, stream.Id, streamIncrement);
            }

            var credit = Math.Min(length, stream.Buffered);
            stream.Buffered -= credit;
            ConsumedOnConnection(credit);
        }

        Flush();
    }

    /// <summary>The caller let go of the stream: body bytes it never read go back to the connection's window.</summary>
    internal void Discard(Http2ClientStream stream)
    {
        lock (_gate)
        {
            if (_closed || stream.Buffered == 0)
            {
                return;
            }

            ConsumedOnConnection(stream.Buffered);
            stream.Buffered = 0;
        }

        Flush();
    }

    internal void Cancel(Http2ClientStream stream)
    {
        lock (_gate)
        {
            if (stream.Closed || stream.Id == 0)
            {
                return;
            }

            if (!_closed)
            {
                Http2FrameWriter.WriteRstStream(Out, stream.Id, Http2ErrorCode.Cancel);
            }

            stream.Error ??= new Http2ClientException("The request was cancelled.", Http2ErrorCode.Cancel, canRetry: false);
            CloseStream(stream);
        }

        Flush();
        stream.Body.Reader.CancelPendingRead();
        WakeWithError(stream);
    }

    /// <summary>A stream's last holder let go: it waits here for the next exchange.</summary>
    internal void Return(Http2ClientStream stream)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _free.Push(stream);
            }
        }
    }

    private void ConsumedOnConnection(int length)
    {
        if (_receiveWindow.Consume(length) is > 0 and var increment)
        {
            Http2FrameWriter.WriteWindowUpdate(Out, 0, increment);
        }
    }

    private Exception? Unwritable(Http2ClientStream stream)
    {
        if (stream.Error is { } error)
        {
            return error;
        }

        if (_closed)
        {
            return Failure ?? new Http2ClientException("The upstream connection has closed.", Http2ErrorCode.ConnectError, canRetry: false);
        }

        return stream.LocalEnded ? new InvalidOperationException("The request has already ended.") : null;
    }

    /// <summary>Under the lock: a stream that has ended both ways leaves the table.</summary>
    private void CloseIfEnded(Http2ClientStream stream)
    {
        if (stream.LocalEnded && stream.RemoteEnded)
        {
            CloseStream(stream);
        }
    }

    /// <summary>Under the lock: the stream leaves the table and frees its slot for a waiting opener.</summary>
    private void CloseStream(Http2ClientStream stream)
    {
        if (stream.Closed)
        {
            return;
        }

        stream.Closed = true;
        _streams.Remove(stream.Id);
        _windowWaiters.Remove(stream);
        _active--;
        if (_active == 0)
        {
            _idleSince = _options.Time.GetTimestamp();
            if (_draining && !_closed)
            {
                _pendingAbort ??= new PendingAbort(null, Http2ErrorCode.NoError);
                _input.CancelPendingRead();
            }
        }

        WakeOpener();
        SlotsChanged?.Invoke();
        stream.Release();
    }

    /// <summary>Under the lock: hands a free slot to the first opener still waiting (those that gave up are cancelled and skipped).</summary>
    private void WakeOpener()
    {
        while (_openWaiters.TryDequeue(out var waiter) && !waiter.TrySetResult())
        {
        }
    }

    /// <summary>Outside the lock: a failed stream's waits end with its error.</summary>
    private void WakeWithError(Http2ClientStream stream)
    {
        bool head;
        bool window;
        lock (_gate)
        {
            head = stream.HeadWaiting;
            window = stream.WindowWaiting;
            stream.HeadWaiting = stream.WindowWaiting = false;
        }

        if (head)
        {
            stream.HeadSignal.Fail(stream.Error!);
        }

        if (window)
        {
            stream.WindowSignal.Fail(stream.Error!);
        }
    }

    private void FailOpenWaiters()
    {
        while (true)
        {
            TaskCompletionSource? waiter;
            lock (_gate)
            {
                if (!_openWaiters.TryDequeue(out waiter))
                {
                    return;
                }
            }

            // Woken, the opener finds the connection draining or closed and is refused as retryable.
            waiter.TrySetResult();
        }
    }
}
