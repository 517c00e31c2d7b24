using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// A TCP socket as a <see cref="ConnectionContext"/>: one receive loop fills the input pipe, one
/// send loop drains the output pipe. Unlike Kestrel's socket connection it keeps TCP's half-close:
/// completing the output sends a FIN and the input keeps flowing until the peer's FIN. The pipes
/// and loops are made when the pipes are first used, so a caller may instead take the raw socket,
/// and a connection whose socket was taken (the epoll engine's) costs no pipes while it lives.
/// </summary>
public sealed class TcpConnection : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionEndPointFeature,
    IConnectionLifetimeFeature, IConnectionSocketFeature, IConnectionResetFeature, IDirectSendFeature, IRawSocketFeature, IReceiveLimitFeature
{
    private const int NotStarted = 0;
    private const int Running = 1;
    private const int SocketTaken = 2;

    // The features this connection implements itself, all it offers unless a caller sets more.
    private static readonly Type[] s_features =
    [
        typeof(IConnectionIdFeature),
        typeof(IConnectionTransportFeature),
        typeof(IConnectionItemsFeature),
        typeof(IConnectionEndPointFeature),
        typeof(IConnectionLifetimeFeature),
        typeof(IConnectionSocketFeature),
        typeof(IConnectionResetFeature),
        typeof(IDirectSendFeature),
        typeof(IRawSocketFeature),
        typeof(IReceiveLimitFeature),
    ];

    private static long s_lastId;

    // Null once taken: the taker closes it, and an idle splice keeps no Socket.
    private Socket? _socket;
    private readonly MemoryPool<byte> _pool;
    private readonly TcpTransportOptions _options;
    private CancellationTokenSource? _closedTokenSource;
    private readonly OwnFeatureCollection _features;
    private readonly Lock _shutdownLock = new();
    private SocketSender? _sender;
    private IDuplexPipe? _transport;
    private Task _receiving = Task.CompletedTask;
    private Task _sending = Task.CompletedTask;
    private int _state;
    private int _maxReceiveSize = int.MaxValue;
    private Exception? _abortReason;
    private bool _socketClosed;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;

    internal TcpConnection(Socket socket, MemoryPool<byte> pool, TcpTransportOptions options)
    {
        _socket = socket;
        _pool = pool;
        _options = options;
        _features = new OwnFeatureCollection(this, s_features);
    }

    public override string ConnectionId
    {
        get => _connectionId ??= "tcp-" + Interlocked.Increment(ref s_lastId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    public override IFeatureCollection Features => _features;

    /// <summary>
    /// Read from the socket on first use (and kept), not up front: each costs an
    /// <see cref="IPEndPoint"/> and an <see cref="IPAddress"/> that an L4 splice never looks at,
    /// for the connection's whole life. Null once the socket is closed or taken if nothing asked
    /// before (the remote endpoint is kept as the socket is taken).
    /// </summary>
    public override EndPoint? LocalEndPoint
    {
        get => base.LocalEndPoint ??= ReadEndPoint(local: true);
        set => base.LocalEndPoint = value;
    }

    /// <inheritdoc cref="LocalEndPoint"/>
    public override EndPoint? RemoteEndPoint
    {
        get => base.RemoteEndPoint ??= ReadEndPoint(local: false);
        set => base.RemoteEndPoint = value;
    }

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override IDuplexPipe Transport
    {
        get
        {
            EnsureStarted();
            return _transport!;
        }

        set => _transport = value;
    }

    /// <summary>
    /// Made on first use: an L4 connection's socket is taken by the splicer and nothing asks for
    /// this token, which would otherwise cost a source (48 bytes) for the connection's life. Made
    /// under the shutdown lock, so either the close that follows cancels it, or the close came
    /// first and the token is a cancelled one.
    /// </summary>
    public override CancellationToken ConnectionClosed
    {
        get
        {
            if (Volatile.Read(ref _closedTokenSource) is { } made)
            {
                return made.Token;
            }

            lock (_shutdownLock)
            {
                if (_socketClosed)
                {
                    return new CancellationToken(canceled: true);
                }

                _closedTokenSource ??= new CancellationTokenSource();
                return _closedTokenSource.Token;
            }
        }

        set => throw new NotSupportedException("The closed token is owned by the transport.");
    }

    public Socket Socket => _socket ?? throw new ObjectDisposedException(nameof(Socket), "The socket was taken.");

    /// <inheritdoc/>
    public int MaxReceiveSize
    {
        get => _maxReceiveSize;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _maxReceiveSize = value;
        }
    }

    public bool CanTakeSocket => Volatile.Read(ref _state) == NotStarted;

    public bool TryTakeSocket([NotNullWhen(true)] out Socket? socket)
    {
        // Under the shutdown lock: a socket being closed by an abort is not handed out.
        lock (_shutdownLock)
        {
            socket = !_socketClosed && Interlocked.CompareExchange(ref _state, SocketTaken, NotStarted) == NotStarted ? _socket : null;
            if (socket is not null)
            {
                // An accepted socket's peer is known already (kept, not copied); once taken, the
                // socket may be closed and is no longer this connection's to ask.
                base.RemoteEndPoint ??= ReadEndPoint(local: false);
                _socket = null;
            }

            return socket is not null;
        }
    }

    public ValueTask SendAsync(ReadOnlySequence<byte> buffer)
    {
        var pending = Sender.SendAsync(Socket, SocketSender.FirstSegments(buffer, out var rest));
        return pending.IsCompletedSuccessfully && rest.IsEmpty ? default : AwaitSendAsync(pending, rest);
    }

    public override void Abort(ConnectionAbortedException abortReason) => CloseSocket(abortReason, reset: false);

    public void Reset() => CloseSocket(new ConnectionResetException("The connection was reset by the proxy."), reset: true);

    public override async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == SocketTaken)
        {
            DisposeOwnResources();
            return;
        }

        if (_transport is { } transport)
        {
            transport.Output.Complete();
            transport.Input.Complete();
        }

        // The send loop drains what is left and sends a FIN; only then is the socket closed.
        await _sending.ConfigureAwait(false);
        CloseSocket(null, reset: false);
        await _receiving.ConfigureAwait(false);
        DisposeOwnResources();
    }

    private void DisposeOwnResources()
    {
        _sender?.Dispose();
        _closedTokenSource?.Dispose();
    }

    private EndPoint? ReadEndPoint(bool local)
    {
        try
        {
            return local ? _socket?.LocalEndPoint : _socket?.RemoteEndPoint;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
        {
            return null;
        }
    }

    private void EnsureStarted()
    {
        if (Volatile.Read(ref _state) != NotStarted)
        {
            return;
        }

        Pipe receivePipe, sendPipe;

        // Under the lock that also guards taking the socket: whoever sees the state running sees
        // the pipes made, too.
        lock (_shutdownLock)
        {
            if (_state != NotStarted)
            {
                return;
            }

            // Inline schedulers: a receive completion runs the reader, which may write and flush to
            // another connection's send pipe, all on one thread with no queueing between hops.
            var pipeOptions = new PipeOptions(
                _pool,
                readerScheduler: PipeScheduler.Inline,
                writerScheduler: PipeScheduler.Inline,
                pauseWriterThreshold: _options.MaxBufferedBytes,
                resumeWriterThreshold: _options.MaxBufferedBytes / 2,
                minimumSegmentSize: _pool.MaxBufferSize,
                useSynchronizationContext: false);
            receivePipe = new Pipe(pipeOptions);
            sendPipe = new Pipe(pipeOptions);
            _transport ??= new DuplexPipe(receivePipe.Reader, sendPipe.Writer);
            Volatile.Write(ref _state, Running);
        }

        _receiving = ReceiveLoopAsync(receivePipe.Writer);
        _sending = SendLoopAsync(sendPipe.Reader);
    }

    /// <summary>
    /// Made on the first send: a connection has one writer at a time (its send loop or a direct
    /// sender), so the first send cannot race another.
    /// </summary>
    private SocketSender Sender => _sender ??= new SocketSender();

    private async Task ReceiveLoopAsync(PipeWriter writer)
    {
        // Half a block, as Kestrel does: small reads share a block instead of each taking a new one,
        // so buffered memory stays close to the bytes buffered.
        var minimumReceiveSize = _pool.MaxBufferSize / 2;
        var waitForData = _options.WaitForDataBeforeAllocatingBuffer;
        Exception? error = null;
        try
        {
            while (true)
            {
                if (waitForData)
                {
                    await Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                }

                var buffer = writer.GetMemory(minimumReceiveSize);
                if (buffer.Length > _maxReceiveSize)
                {
                    buffer = buffer[.._maxReceiveSize];
                }

                var received = await Socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (received == 0)
                {
                    // A FIN, or our own abort: shutting the socket down ends a pending receive
                    // with zero bytes too, and that must not read as the peer's orderly close.
                    error = Volatile.Read(ref _abortReason);
                    break;
                }

                writer.Advance(received);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            error = TranslateError(ex);
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    private async Task SendLoopAsync(PipeReader reader)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    await SendAsync(buffer).ConfigureAwait(false);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            ShutdownSend();
        }
        catch (Exception ex)
        {
            // A peer that reset while we sent is reset in turn, so the reset stays a reset for the
            // receive loop too; other failures close the socket.
            error = TranslateError(ex);
            CloseSocket(error, reset: error is ConnectionResetException);
        }
        finally
        {
            await reader.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitSendAsync(ValueTask pending, ReadOnlySequence<byte> rest)
    {
        try
        {
            await pending.ConfigureAwait(false);
            while (!rest.IsEmpty)
            {
                await Sender.SendAsync(Socket, SocketSender.FirstSegments(rest, out rest)).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            throw TranslateError(ex);
        }
    }

    private void ShutdownSend()
    {
        lock (_shutdownLock)
        {
            if (_socketClosed)
            {
                return;
            }

            try
            {
                Socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The peer is already gone; the receive loop reports how.
            }
        }
    }

    private void CloseSocket(Exception? reason, bool reset)
    {
        lock (_shutdownLock)
        {
            // A taken socket belongs to its taker now.
            if (_socketClosed || Volatile.Read(ref _state) == SocketTaken)
            {
                return;
            }

            _socketClosed = true;
            _abortReason = reason;
            try
            {
                if (reset)
                {
                    Socket.LingerState = new LingerOption(true, 0);
                }
                else if (reason is not null)
                {
                    Socket.Shutdown(SocketShutdown.Both);
                }
            }
            catch (SocketException)
            {
                // Closing below is all that is left to do.
            }

            Socket.Dispose();
        }

        CancelClosedToken();
    }

    private void CancelClosedToken()
    {
        try
        {
            Volatile.Read(ref _closedTokenSource)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private Exception TranslateError(Exception ex)
    {
        if (_abortReason is not null)
        {
            return _abortReason;
        }

        return ex switch
        {
            SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted }
                => new ConnectionResetException(ex.Message, ex),
            SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument }
                or ObjectDisposedException => new ConnectionAbortedException("The connection was closed.", ex),
            ConnectionResetException or ConnectionAbortedException => ex,
            _ => new IOException(ex.Message, ex),
        };
    }

    EndPoint? IConnectionEndPointFeature.LocalEndPoint { get => LocalEndPoint; set => LocalEndPoint = value; }

    EndPoint? IConnectionEndPointFeature.RemoteEndPoint { get => RemoteEndPoint; set => RemoteEndPoint = value; }
}
