using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Mux;

/// <summary>
/// A yamux session (hashicorp/yamux spec.md) over one connection: streams opened from either
/// side, each with its own flow-control window, half-close and reset; keep-alive pings; and
/// go-away. One reader turns frames into stream events, running each stream's reader inline;
/// frames go out through an inline writer (see YamuxSession.Writer.cs), so no stream, and no
/// control frame the reader must answer, ever waits on another. A peer that breaks the protocol
/// gets a protocol-error go-away and loses the session, and only it.
/// </summary>
public sealed partial class YamuxSession : IAsyncDisposable
{
    private static long s_sessions;

    private readonly ConnectionContext _connection;
    private readonly bool _isClient;
    private readonly ConcurrentDictionary<uint, YamuxStream> _streams = new();
    private readonly Channel<YamuxStream> _accepted;
    private readonly ConcurrentDictionary<uint, TaskCompletionSource> _pings = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly YamuxPeerStreamIds _peerStreamIds;
    private Task _running = Task.CompletedTask;
    private uint _nextStreamId;
    private uint _nextPingId;
    private int _pendingAccepts;
    private long _lastInbound = Environment.TickCount64;
    private volatile bool _remoteGoAway;
    private volatile bool _localGoAway;
    private int _closed;

    public YamuxSession(ConnectionContext connection, bool isClient, YamuxOptions? options = null)
    {
        _connection = connection;
        _isClient = isClient;
        Options = options ?? new YamuxOptions();
        _nextStreamId = isClient ? 1u : 2u;
        _peerStreamIds = new YamuxPeerStreamIds(isClient ? 0u : 1u);
        _accepted = Channel.CreateBounded<YamuxStream>(new BoundedChannelOptions(Math.Max(1, Options.AcceptBacklog)) { SingleReader = false });
        Id = $"yamux-{Interlocked.Increment(ref s_sessions)}";
    }

    public string Id { get; }

    public YamuxOptions Options { get; }

    public EndPoint? LocalEndPoint => _connection.LocalEndPoint;

    public EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>Streams open now.</summary>
    public int StreamCount => _streams.Count;

    /// <summary>Completes when the session has ended (connection closed, go-away exchanged, or a protocol error).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Why the session ended, when it was not a clean close: a protocol error, the connection failing, a dead peer.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Why the peer ended the session, if it sent a go-away.</summary>
    public YamuxGoAwayCode? RemoteGoAwayCode { get; private set; }

    /// <summary>Starts reading, writing and pinging; call once.</summary>
    public void Start() => _running = RunAsync();

    /// <summary>Opens a stream to the peer. Data may be written at once: the peer's ACK is not waited for.</summary>
    /// <exception cref="YamuxSessionClosedException">The session ended, or either side said go-away.</exception>
    public YamuxStream OpenStream()
    {
        if (Volatile.Read(ref _closed) != 0 || _remoteGoAway || _localGoAway)
        {
            throw new YamuxSessionClosedException("The yamux session takes no new streams.");
        }

        YamuxStream stream;
        lock (_streams)
        {
            // SYNs leave in the order their ids were taken: the peer requires rising ids.
            var id = _nextStreamId;
            _nextStreamId += 2;
            stream = new YamuxStream(this, id, Options.ReceiveWindow, Options.Pool);
            _streams[id] = stream;
            Interlocked.Increment(ref _openStreams);
            Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, id, stream.InitialGrant()));
        }

        stream.Start();
        return stream;
    }

    /// <summary>The next stream the peer opened; null once the session ended.</summary>
    public async ValueTask<YamuxStream?> AcceptStreamAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var stream = await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            Interlocked.Decrement(ref _pendingAccepts);
            return stream;
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>Measures one round trip.</summary>
    public async Task<TimeSpan> PingAsync(CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextPingId);
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pings[id] = answered;
        var started = Environment.TickCount64;
        try
        {
            Send(new YamuxHeader(YamuxFrameType.Ping, YamuxFlags.Syn, 0, id));
            await answered.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
        }
        finally
        {
            _pings.TryRemove(id, out _);
        }
    }

    /// <summary>Says go-away (no new streams either way), lets open streams finish, and ends the session once they have.</summary>
    public void GoAway()
    {
        if (!_localGoAway)
        {
            _localGoAway = true;
            Send(new YamuxHeader(YamuxFrameType.GoAway, YamuxFlags.None, 0, (uint)YamuxGoAwayCode.Normal));
        }
    }

    /// <summary>Ends the session now: a go-away, every open stream reset, the connection's output completed.</summary>
    public async ValueTask DisposeAsync()
    {
        GoAway();
        Close(null);
        await _running.ConfigureAwait(false);
        _closing.Dispose();
    }

    internal void Remove(YamuxStream stream)
    {
        if (_streams.TryRemove(new KeyValuePair<uint, YamuxStream>(stream.Id, stream)))
        {
            Interlocked.Decrement(ref _openStreams);
        }

        if (_localGoAway && _remoteGoAway && _streams.IsEmpty)
        {
            Close(null);
        }
    }

    private async Task RunAsync()
    {
        var pinging = Options.KeepAliveInterval > TimeSpan.Zero ? KeepAliveAsync() : Task.CompletedTask;
        Exception? failure = null;
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (YamuxProtocolException ex)
        {
            failure = ex;
            Send(new YamuxHeader(YamuxFrameType.GoAway, YamuxFlags.None, 0, (uint)YamuxGoAwayCode.ProtocolError));
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            failure = ex;
        }

        Close(failure);
        await TearDownAsync().ConfigureAwait(false);
        await pinging.ConfigureAwait(false);
        _completion.TrySetResult();
    }

    private async Task ReadLoopAsync()
    {
        var input = _connection.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync(_closing.Token).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (!buffer.IsEmpty)
            {
                Volatile.Write(ref _lastInbound, Environment.TickCount64);
            }

            // Frames the streams' readers queue while this batch is handled (they run inline) go
            // out together at its end, and window updates wait for it too: a FIN later in the
            // batch says the peer needs no more window (see BeginBatch).
            var outer = BeginBatch();
            try
            {
                while (YamuxHeader.TryRead(buffer, out var header))
                {
                    var payloadLength = header.Type == YamuxFrameType.Data ? header.Length : 0;
                    if (payloadLength > (uint)Math.Max(Options.ReceiveWindow, YamuxOptions.SpecInitialWindow))
                    {
                        throw new YamuxProtocolException($"a {payloadLength}-byte data frame exceeds any window granted");
                    }

                    if (buffer.Length < YamuxHeader.Size + payloadLength)
                    {
                        break;
                    }

                    Handle(header, buffer.Slice(YamuxHeader.Size, payloadLength));
                    buffer = buffer.Slice(YamuxHeader.Size + payloadLength);
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                EndBatch(outer);
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private void Handle(YamuxHeader header, in ReadOnlySequence<byte> payload)
    {
        switch (header.Type)
        {
            case YamuxFrameType.Ping:
                if ((header.Flags & YamuxFlags.Syn) != 0)
                {
                    Send(new YamuxHeader(YamuxFrameType.Ping, YamuxFlags.Ack, 0, header.Length));
                }
                else if (_pings.TryRemove(header.Length, out var answered))
                {
                    answered.TrySetResult();
                }

                return;
            case YamuxFrameType.GoAway:
                RemoteGoAwayCode = (YamuxGoAwayCode)header.Length;
                _remoteGoAway = true;
                if (_localGoAway && _streams.IsEmpty)
                {
                    Close(null);
                }

                return;
        }

        if (header.StreamId == 0)
        {
            throw new YamuxProtocolException($"a {header.Type} frame for stream 0");
        }

        YamuxStream? stream;
        if ((header.Flags & YamuxFlags.Syn) != 0)
        {
            stream = AcceptSyn(header.StreamId);
        }
        else if (!_streams.TryGetValue(header.StreamId, out stream))
        {
            // A stream closed or reset here while the peer was still sending: its frames are dropped.
            return;
        }

        if (stream is null)
        {
            return;
        }

        if (header.Type == YamuxFrameType.WindowUpdate)
        {
            stream.OnWindowUpdate(header.Length);
        }
        else
        {
            stream.OnData(payload);
        }

        if ((header.Flags & YamuxFlags.Rst) != 0)
        {
            stream.OnReset(new ConnectionResetException($"The peer reset yamux stream {stream.Id}."));
        }
        else if ((header.Flags & YamuxFlags.Fin) != 0)
        {
            stream.OnRemoteFin();
        }
    }

    /// <summary>
    /// A stream the peer opens: accepted (ACK) or refused (RST) when over the limits; null when
    /// refused. Its SYN may come after a higher id's (see <see cref="YamuxPeerStreamIds"/>); an id
    /// the peer used before, for a stream open or closed, breaks the protocol as HashiCorp's
    /// yamux treats a duplicate.
    /// </summary>
    private YamuxStream? AcceptSyn(uint id)
    {
        switch (_peerStreamIds.Record(id))
        {
            case YamuxSynVerdict.WrongParity:
                throw new YamuxProtocolException($"stream id {id} cannot be opened by the peer (its ids are {(_isClient ? "even" : "odd")})");
            case YamuxSynVerdict.Reused:
                throw new YamuxProtocolException($"stream id {id} was opened by the peer before");
            case YamuxSynVerdict.TooOld:
                Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Rst, id, 0));
                return null;
        }

        if (_localGoAway || _streams.Count >= Options.MaxStreams || Interlocked.Increment(ref _pendingAccepts) > Options.AcceptBacklog)
        {
            if (!_localGoAway && _streams.Count < Options.MaxStreams)
            {
                Interlocked.Decrement(ref _pendingAccepts);
            }

            Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Rst, id, 0));
            return null;
        }

        var stream = new YamuxStream(this, id, Options.ReceiveWindow, Options.Pool);
        _streams[id] = stream;
        Interlocked.Increment(ref _openStreams);
        Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Ack, id, stream.InitialGrant()));
        stream.Start();
        if (!_accepted.Writer.TryWrite(stream))
        {
            Interlocked.Decrement(ref _pendingAccepts);
            stream.Abort(new ConnectionAbortedException("The accept backlog is full."));
            return null;
        }

        return stream;
    }

    /// <summary>Ends the session: no more frames are taken, open streams are reset, the reader is stopped.</summary>
    private void Close(Exception? reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        Failure = reason;

        _accepted.Writer.TryComplete();
        var reset = reason is null ? new ConnectionResetException("The yamux session ended.") : new ConnectionResetException("The yamux session ended.", reason);
        foreach (var stream in _streams.Values)
        {
            stream.OnReset(reset);
        }

        foreach (var ping in _pings.Values)
        {
            ping.TrySetException(new YamuxSessionClosedException("The yamux session has ended."));
        }

        _closing.Cancel();
    }
}

/// <summary>The session ended, or takes no new streams.</summary>
public sealed class YamuxSessionClosedException(string message) : Exception(message);
