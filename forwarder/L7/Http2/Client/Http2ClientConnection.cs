using System.Buffers;
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
/// retryable and drains the rest. One reader runs the receive side (Reading.cs, Response.cs);
/// frames leave through a writer that puts everything written while a flush or a batch is under
/// way into the next single flush (Writing.cs). Streams open, close and are pooled in Streams.cs,
/// flow control is Credit.cs, resets, GOAWAY and the end of the connection Termination.cs.
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
    private readonly Dictionary<int, Http2ClientExchange> _streams = [];
    private readonly Stack<Http2ClientExchange> _free = new();
    private readonly Queue<TaskCompletionSource> _openWaiters = new();
    private readonly List<Http2ClientExchange> _windowWaiters = [];

    /// <summary>
    /// Literals go raw: Huffman-coding every field of every request anew cost ~2% of the proxy's
    /// CPU, for some 22% fewer header bytes on a link to an upstream, nearly always a LAN or loopback one.
    /// </summary>
    private readonly HpackEncoder _encoder = new(huffman: false);
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
                new(Http2SettingId.InitialWindowSize, (uint)_options.InitialStreamWindow),
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
            // A failed dial, not a refused stream: outlier detection hears of it (ConnectError).
            Abort(new Http2ClientException("The server sent no SETTINGS in time.", Http2ErrorCode.ConnectError, canRetry: false) { SettingsTimedOut = true }, Http2ErrorCode.SettingsTimeout);
        }

        if (!_peerSettings.Task.IsCompleted)
        {
            await _completion.Task.ConfigureAwait(false);
            // Whatever ended it (a close, a GOAWAY, broken frames), a dial that failed: never a refused stream to send again.
            throw Failure is Http2ClientException { Code: Http2ErrorCode.ConnectError } failure ? failure
                : new Http2ClientException("The connection ended before the server's SETTINGS.", Http2ErrorCode.ConnectError, canRetry: false, Failure);
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
}
