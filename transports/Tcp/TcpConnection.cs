using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
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
public sealed partial class TcpConnection : ConnectionContext,
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
    private readonly FrameBlockPool _receivePool;
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
        _receivePool = new FrameBlockPool(pool);
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

            // A consumer that caps reads to a frame's payload frames them: blocks received into
            // from now on keep room for the frame's header in front (FrameBlock), so the framing
            // writes it in place and copies nothing. A full read is then a whole block.
            _receivePool.Framing = value <= _pool.MaxBufferSize - FrameBlock.Headroom;
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

    EndPoint? IConnectionEndPointFeature.LocalEndPoint { get => LocalEndPoint; set => LocalEndPoint = value; }

    EndPoint? IConnectionEndPointFeature.RemoteEndPoint { get => RemoteEndPoint; set => RemoteEndPoint = value; }
}
