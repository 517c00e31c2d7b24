using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Forwarder.Transports.Features;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.Transports.Mux;

/// <summary>
/// One yamux stream as a <see cref="ConnectionContext"/>, so whatever runs over a TCP connection
/// runs over it unchanged. What the peer sends lands in <see cref="Transport"/>'s input (up to
/// the receive window; the window is granted again once the application has consumed half of
/// it); what the application writes is cut into data frames as the peer's window allows. Both
/// pipes run their readers inline: the application reads on the session's reader, and what it
/// writes is framed on its own flush, with no thread hop either way. Completing the
/// output half-closes the stream (FIN); <see cref="Abort"/> resets it (RST); disposing it sends
/// what was written and a FIN, never a RST.
/// </summary>
public sealed partial class YamuxStream : ConnectionContext, IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionLifetimeFeature, IConnectionEndPointFeature, IDirectSendFeature
{
    private readonly YamuxSession _session;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CountingWriter _writer;
    private readonly FeatureCollection _features = new();
    private readonly CancellationTokenSource _closed = new();
    private readonly Lock _lock = new();
    private readonly int _windowGrant;
    private long _sendWindow = YamuxOptions.SpecInitialWindow;
    private long _receiveCredit;
    private long _unacknowledged;
    private long _pumped;
    private int _windowUpdateDue;
    private TaskCompletionSource? _windowWaiter;
    private Task _pumping = Task.CompletedTask;
    private bool _localClosed;
    private bool _remoteClosed;
    private bool _reset;
    private bool _removed;
    private bool _discarding;
    private bool _delivering;
    private bool _disposing;
    private bool _waitingForRoom;
    private bool _inputEndPending;
    private Exception? _inputEndReason;

    internal YamuxStream(YamuxSession session, uint id, int receiveWindow, MemoryPool<byte> pool)
    {
        _session = session;
        Id = id;
        _windowGrant = receiveWindow;
        _receiveCredit = YamuxOptions.SpecInitialWindow;

        // The receive window bounds what the peer may send, so the input never pushes back on the
        // session's reader. Inline readers: the application reads on the session's reader, and the
        // pump frames what the application writes on the application's own flush.
        // A block pool's blocks whole (a frame's payload in one segment); the shared pool has no block size.
        var segment = pool == MemoryPool<byte>.Shared ? 4096 : pool.MaxBufferSize;
        _input = new Pipe(new PipeOptions(pool, PipeScheduler.Inline, pauseWriterThreshold: 0, minimumSegmentSize: segment, useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(pool, PipeScheduler.Inline, pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, minimumSegmentSize: segment, useSynchronizationContext: false));
        _writer = new CountingWriter(_output.Writer);
        Transport = new DuplexPipe(new WindowedReader(this, _input.Reader), _writer);
        ConnectionId = $"{session.Id}/{id}";
        ConnectionClosed = _closed.Token;
        LocalEndPoint = session.LocalEndPoint;
        RemoteEndPoint = session.RemoteEndPoint;
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
        _features.Set<IDirectSendFeature>(this);
    }

    public uint Id { get; }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items { get; set; } = new ConnectionItems();

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed { get; set; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    /// <summary>Starts sending what the application writes.</summary>
    internal void Start() => _pumping = PumpAsync();

    /// <summary>Data from the peer (on the session's reader).</summary>
    /// <exception cref="YamuxProtocolException">More than the window allows.</exception>
    internal void OnData(in ReadOnlySequence<byte> payload)
    {
        var credit = Interlocked.Add(ref _receiveCredit, -payload.Length);
        if (credit < 0)
        {
            throw new YamuxProtocolException($"stream {Id} received {payload.Length} bytes beyond its window");
        }

        if (credit == 0 && Volatile.Read(ref _localClosed))
        {
            // Out of window after our FIN: the update held back for this moment is due (see SendWindowUpdate).
            MakeWindowUpdateDue();
        }

        // Written under the lock (the application may reset the stream, completing this writer, at
        // any moment), flushed outside it: the flush runs the application's reader inline, and a
        // reset meanwhile completes the input once the flush is back (see CompleteInput).
        bool discarding;
        lock (_lock)
        {
            discarding = _discarding;
            if (!discarding)
            {
                if (payload.IsEmpty || _reset || _remoteClosed)
                {
                    return;
                }

                foreach (var segment in payload)
                {
                    _input.Writer.Write(segment.Span);
                }

                _delivering = true;
            }
        }

        if (discarding)
        {
            // Disposed before the peer finished: nobody reads, so the window goes straight back.
            Consumed(payload.Length);
            return;
        }

        try
        {
            // Completes at once: the pipe never pauses its writer.
            _input.Writer.FlushAsync().GetAwaiter().GetResult();
        }
        finally
        {
            bool ended;
            lock (_lock)
            {
                _delivering = false;
                ended = _inputEndPending;
            }

            if (ended)
            {
                _input.Writer.Complete(_inputEndReason);
            }
        }
    }

    /// <summary>The peer half-closed: the application reads to the end.</summary>
    internal void OnRemoteFin()
    {
        lock (_lock)
        {
            if (_remoteClosed || _reset)
            {
                return;
            }

            _remoteClosed = true;
        }

        CompleteInput(null);
        RemoveIfDone();
    }

    /// <summary>The peer reset the stream, or the session ended under it.</summary>
    internal void OnReset(Exception reason)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_reset)
            {
                return;
            }

            _reset = true;
            _waitingForRoom = false;
            waiter = _windowWaiter;
            _windowWaiter = null;
        }

        CompleteInput(reason);
        waiter?.TrySetException(reason);
        _output.Reader.CancelPendingRead();
        Remove();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        bool send;
        lock (_lock)
        {
            send = !_reset && !(_localClosed && _remoteClosed);
        }

        if (send)
        {
            _session.Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Rst, Id, 0));
        }

        OnReset(abortReason);
    }

    public override async ValueTask DisposeAsync()
    {
        // Done with the stream: what was written goes out with a FIN.
        lock (_lock)
        {
            _disposing = true;
        }

        OnRoom();
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        await _pumping.ConfigureAwait(false);
        await Transport.Input.CompleteAsync().ConfigureAwait(false);
        bool discarding;
        lock (_lock)
        {
            // No RST after the FIN even if the peer is still sending: HashiCorp's yamux drops what
            // it has received but not yet read once a RST comes, so the peer would lose the end
            // of what we wrote. What it still sends is dropped here instead, its whole window
            // given back so it never stalls writing to nobody, and the stream is forgotten once
            // the peer's FIN (or RST, or the session's end) comes.
            _discarding = discarding = !_reset && !_remoteClosed;
        }

        if (discarding)
        {
            // Everything taken off the peer's credit and not yet granted back (read or not) goes back.
            Interlocked.Exchange(ref _unacknowledged, _windowGrant - Interlocked.Read(ref _receiveCredit));
            MakeWindowUpdateDue();
            return;
        }

        // Whatever ended it (both FINs, a reset, the session), a disposed stream is closed.
        Remove();
    }

    private async Task PumpAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                if (!await SendFramesAsync(result.Buffer).ConfigureAwait(false))
                {
                    return;
                }

                Volatile.Write(ref _pumped, _pumped + result.Buffer.Length);
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || Volatile.Read(ref _reset))
                {
                    break;
                }
            }

            lock (_lock)
            {
                if (_reset)
                {
                    return;
                }

                _localClosed = true;
            }

            _session.SendInOrder(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.Fin, Id, 0));
            RemoveIfDone();
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException or ConnectionResetException or ConnectionAbortedException or YamuxSessionClosedException)
        {
            // Reset or session gone: nothing more can be sent.
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Ends the application's input, or, while the session's reader is flushing into it, has the reader end it once the flush is back.</summary>
    private void CompleteInput(Exception? reason)
    {
        lock (_lock)
        {
            if (_delivering)
            {
                _inputEndPending = true;
                _inputEndReason ??= reason;
                return;
            }
        }

        _input.Writer.Complete(reason);
    }

    private void RemoveIfDone()
    {
        lock (_lock)
        {
            if (!(_localClosed && _remoteClosed))
            {
                return;
            }
        }

        Remove();
    }

    private void Remove()
    {
        lock (_lock)
        {
            if (_removed)
            {
                return;
            }

            _removed = true;
        }

        _session.Remove(this);

        // Never disposed: it has no timer or parent to release, and a peer's FIN handled on the
        // session's reader may reach here after the application disposed the stream.
        _closed.Cancel();
    }
}
