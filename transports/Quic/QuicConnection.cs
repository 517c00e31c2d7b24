using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

/// <summary>
/// A QUIC connection over ngtcp2 + GnuTLS. A client owns a connected UDP socket and its receive loop;
/// a server connection shares its <see cref="QuicListener"/>'s socket, which hands it the datagrams
/// addressed to its connection IDs. Every ngtcp2 call runs under <see cref="_gate"/>: datagrams, the
/// expiry timer and stream reads/writes take it in turn, and each ends by writing whatever ngtcp2 has to send.
/// </summary>
internal sealed unsafe partial class QuicConnection : IAsyncDisposable
{
    private const int PacketBufferSize = 64 * 1024;
    private const int SockAddrStorage = 128;
    private readonly object _gate = new();
    private readonly Socket _socket;
    private readonly QuicConnectionOptions _options;
    private readonly QuicListener? _listener;
    private readonly SocketAddress? _peer; // where a server connection sends; null: the socket is connected
    private readonly List<byte[]> _localConnectionIds = [];
    private readonly Channel<QuicStream> _acceptedStreams = Channel.CreateUnbounded<QuicStream>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly QuicChunkPool _chunks = new();
    private readonly Dictionary<long, QuicStream> _streams = [];
    private readonly byte[] _sendBuffer = GC.AllocateUninitializedArray<byte>(PacketBufferSize, pinned: true);
    private readonly TaskCompletionSource _handshake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly Timer _timer;
    private readonly GCHandle _self;
    // One native block: conn_ref, the socket path (both sockaddrs) and a scratch path ngtcp2 fills on write.
    private readonly byte* _native;
    private TaskCompletionSource? _streamsAvailable;
    private TaskCompletionSource? _noStreams;
    private nint _conn;
    private nint _tls;
    private nint _credentials;
    private nint _verifiedName;
    private string? _peerRefusal;
    private bool _statelessReset;
    private int _disposed;
    private Exception? _failure;
    private Task _receiveLoop = Task.CompletedTask;
    private byte[]? _receiveBuffer; // client only: a server connection reads from its listener's buffer

    private QuicConnection(Socket socket, QuicConnectionOptions options, QuicListener? listener = null, SocketAddress? peer = null)
    {
        _socket = socket;
        _options = options;
        _listener = listener;
        _peer = peer;
        _self = GCHandle.Alloc(this);
        _timer = new Timer(static state => ((QuicConnection)state!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
        _native = (byte*)NativeMemory.AllocZeroed((nuint)(sizeof(CryptoConnRef) + 2 * sizeof(Ngtcp2Path) + 4 * SockAddrStorage));
    }

    private CryptoConnRef* ConnRef => (CryptoConnRef*)_native;
    private Ngtcp2Path* SocketPath => (Ngtcp2Path*)(_native + sizeof(CryptoConnRef));
    private Ngtcp2Path* ScratchPath => SocketPath + 1;
    private byte* SockAddr(int i) => _native + sizeof(CryptoConnRef) + 2 * sizeof(Ngtcp2Path) + i * SockAddrStorage;

    internal Task Handshake => _handshake.Task;

    public IPEndPoint? LocalEndPoint => _socket.LocalEndPoint as IPEndPoint;

    /// <summary>The peer's address: the connected socket's for a client, the first datagram's for a server connection.</summary>
    public IPEndPoint? RemoteEndPoint => _peer is null ? _socket.RemoteEndPoint as IPEndPoint : (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(_peer);

    /// <summary>The peer's leaf certificate, once <see cref="QuicConnectionOptions.ValidatePeerCertificate"/> admitted it.</summary>
    public X509Certificate2? RemoteCertificate { get; private set; }

    public bool IsHandshakeComplete { get { lock (_gate) { return _conn != 0 && GetHandshakeCompleted(_conn) != 0; } } }

    /// <summary>The streams open now, either end's: those a drain that ran out of time cuts.</summary>
    public int StreamCount { get { lock (_gate) { return _streams.Count; } } }

    private void ReleaseNative()
    {
        lock (_gate)
        {
            if (_conn != 0)
            {
                ConnDelete(_conn);
                _conn = 0;
            }

            if (_tls != 0)
            {
                GnuTlsNative.Deinit(_tls);
                _tls = 0;
            }

            if (_credentials != 0)
            {
                GnuTlsNative.CertificateFreeCredentials(_credentials);
                _credentials = 0;
            }
        }

        Marshal.FreeCoTaskMem(_verifiedName);
        RemoteCertificate?.Dispose();
        NativeMemory.Free(_native);
    }

    private void BeginDispose()
    {
        lock (_gate)
        {
            if (_failure is null && _conn != 0)
            {
                var closeError = stackalloc byte[ConnectionCloseErrorSize];
                SetApplicationError(closeError, 0, null, 0);
                SendConnectionCloseLocked(closeError);
            }

            FailLocked(new ObjectDisposedException(nameof(QuicConnection)));
        }
    }

    private void OnTimer()
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return;
            }

            var rv = HandleExpiry(_conn, Now());
            if (rv != 0)
            {
                FailLocked(new QuicException(rv == ErrIdleClose ? "QUIC connection idle timeout" : $"QUIC timer: {ErrorText(rv)}"));
                return;
            }

            FlushLocked();
        }
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw new QuicException(_failure.Message);
        }
    }

    private void FailLocked(Exception failure)
    {
        if (_failure is not null)
        {
            return;
        }

        _failure = failure;
        _timer.Change(Timeout.Infinite, Timeout.Infinite);
        _handshake.TrySetException(failure);
        _streamsAvailable?.TrySetException(failure);
        foreach (var stream in _streams.Values)
        {
            stream.OnClosed(failure);
        }

        _streams.Clear();
        OnStreamRemovedLocked();
        _acceptedStreams.Writer.TryComplete(failure);
        foreach (var id in _localConnectionIds)
        {
            _listener?.Unroute(id);
        }
    }

    private void SendConnectionCloseLocked(byte* closeError)
    {
        PacketInfo info = default;
        nint written;
        fixed (byte* dest = _sendBuffer)
        {
            written = WriteConnectionClose(_conn, ScratchPath, PacketInfoVersion, &info, dest, 1452, closeError, Now());
        }

        if (written > 0)
        {
            SendDatagrams((int)written, (int)written);
        }
    }

    private static ulong Now() => (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    private static ulong Nanoseconds(TimeSpan span) => (ulong)span.Ticks * 100;

    private static QuicConnection From(void* userData) => (QuicConnection)GCHandle.FromIntPtr((nint)userData).Target!;
}
