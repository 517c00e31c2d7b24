using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A connection whose receiving is driven by a splicer thread's edge-triggered epoll set instead
/// of .NET's socket engine: on each edge the thread reads until the socket is drained (a short
/// read says so, with no extra call that fails with EAGAIN) straight into its input
/// (<see cref="ReceiveReader"/>), and the reader's continuation (an HTTP session, say) runs right
/// there, inline. A flush sends from whichever thread flushes, with a plain send(2) and no pipe in
/// between (<see cref="DirectSocketWriter"/>); only when the socket's buffer is full does the
/// thread watch for writability. The semantics of
/// <see cref="TcpConnection"/> (half-close, resets), a third fewer system calls per exchange and
/// no thread hop.
/// </summary>
public sealed partial class EpollConnection : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionEndPointFeature,
    IConnectionLifetimeFeature, IConnectionResetFeature
{
    private const uint ReadInterest = EpollIn | EpollRdHup | EpollEt;

    // The features this connection implements itself, all it offers unless a caller sets more.
    private static readonly Type[] s_features =
    [
        typeof(IConnectionIdFeature),
        typeof(IConnectionTransportFeature),
        typeof(IConnectionItemsFeature),
        typeof(IConnectionEndPointFeature),
        typeof(IConnectionLifetimeFeature),
        typeof(IConnectionResetFeature),
    ];

    private static long s_lastId;

    private readonly Socket _socket;
    private readonly int _fd;
    private readonly ReceiveReader _input;
    private readonly DirectSocketWriter _output;
    private readonly int _minimumReceiveSize;
    private readonly CancellationTokenSource _closedTokenSource = new();
    private readonly OwnFeatureCollection _features;
    private readonly Lock _watchLock = new();
    private readonly Target _target;
    private readonly SplicerThread _thread;
    private readonly TaskCompletionSource _unwatched = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _sending = Task.CompletedTask;
    private readonly Action _resumeReceive;
    private IDuplexPipe _transport;
    private IDictionary<object, object?>? _items;
    private string? _connectionId;
    private bool _referenced;
    private Exception? _abortReason;
    private TaskCompletionSource? _writable;
    private bool _receivePaused;
    private bool _readable;
    private bool _hungUp;
    private bool _receiveEnded;
    private int _closed;

    private EpollConnection(Socket socket, SocketSplicer splicer, MemoryPool<byte> pool, long maxBufferedBytes)
    {
        _socket = socket;
        socket.SafeHandle.DangerousAddRef(ref _referenced);
        socket.Blocking = false;
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        _features = new OwnFeatureCollection(this, s_features);
        _minimumReceiveSize = pool.MaxBufferSize / 2;

        _resumeReceive = ScheduleResume;
        _input = new ReceiveReader(pool, maxBufferedBytes, _resumeReceive);
        _output = new DirectSocketWriter(this, pool);
        _transport = new DuplexPipe(_input, _output);

        _target = new Target(this);
        _thread = splicer.Register(_target);
    }

    public override string ConnectionId
    {
        get => _connectionId ??= $"ep-{Interlocked.Increment(ref s_lastId)}";
        set => _connectionId = value;
    }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    public override IDuplexPipe Transport
    {
        get => _transport;
        set => _transport = value;
    }

    public override CancellationToken ConnectionClosed
    {
        get => _closedTokenSource.Token;
        set => throw new NotSupportedException("The closed token belongs to the transport.");
    }

    /// <summary>
    /// Moves a connection of the TCP transport onto a splicer thread, if its socket can still be
    /// taken (its pipes never used); otherwise returns it as it is. The original is disposed.
    /// </summary>
    public static async ValueTask<ConnectionContext> AdoptAsync(ConnectionContext connection, SocketSplicer splicer, MemoryPool<byte> pool, long maxBufferedBytes)
    {
        if (connection.Features.Get<IRawSocketFeature>() is not { CanTakeSocket: true } raw || !raw.TryTakeSocket(out var socket))
        {
            return connection;
        }

        // The taken connection only frees its own resources now.
        await connection.DisposeAsync().ConfigureAwait(false);
        try
        {
            return new EpollConnection(socket, splicer, pool, maxBufferedBytes);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override void Abort(ConnectionAbortedException abortReason) => Close(abortReason, reset: false);

    public void Reset() => Close(new ConnectionResetException("The connection was reset by the proxy."), reset: true);

    public override async ValueTask DisposeAsync()
    {
        _transport.Output.Complete();
        _transport.Input.Complete();

        // What is left is sent, then a FIN; then the thread lets go of the socket.
        await _sending.ConfigureAwait(false);
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            CancelClosedToken();
        }

        _thread.Cancel(_target, new ConnectionAbortedException("The connection was disposed."));
        await _unwatched.Task.ConfigureAwait(false);
        _socket.Dispose();
        _closedTokenSource.Dispose();
    }

    private void Close(Exception reason, bool reset)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _abortReason = reason;
        try
        {
            if (reset)
            {
                // The RST goes out when the descriptor is closed; a shutdown would send a FIN
                // first, and the peer would take the cut stream for a whole one. The thread lets
                // go of the socket instead, which wakes its readers and any blocked send.
                _socket.LingerState = new LingerOption(true, 0);
                _thread.Cancel(_target, reason);
            }
            else
            {
                // Wakes the thread (a hang-up edge) and any blocked send. Through the Socket, not
                // the descriptor: disposal may close that concurrently, and the number be reused.
                _socket.Shutdown(SocketShutdown.Both);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }

        CancelClosedToken();
    }

    private void CancelClosedToken()
    {
        try
        {
            _closedTokenSource.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    EndPoint? IConnectionEndPointFeature.LocalEndPoint { get => LocalEndPoint; set => LocalEndPoint = value; }

    EndPoint? IConnectionEndPointFeature.RemoteEndPoint { get => RemoteEndPoint; set => RemoteEndPoint = value; }
}
