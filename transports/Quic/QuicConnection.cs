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
    private const int MaxReceivesPerDrain = 64;

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

    /// <summary>
    /// Ends once no stream is open (or the connection has ended). ngtcp2 closes a stream only when
    /// both sides finished it and every byte sent on it was acknowledged, so closing the connection
    /// then loses nothing: how a link that is replaced is drained.
    /// </summary>
    public Task WhenNoStreamsAsync()
    {
        lock (_gate)
        {
            if (_failure is not null || _streams.Count == 0)
            {
                return Task.CompletedTask;
            }

            _noStreams ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _noStreams.Task;
        }
    }

    /// <summary>Called under the lock as a stream leaves <see cref="_streams"/>.</summary>
    private void OnStreamRemovedLocked()
    {
        if (_streams.Count == 0 && _noStreams is { } waiting)
        {
            _noStreams = null;
            waiting.TrySetResult();
        }
    }

    /// <returns>The new stream, or null when the peer's stream limit is reached (then <paramref name="wait"/> ends when it rises).</returns>
    private QuicStream? TryOpenStream(out Task? wait)
    {
        lock (_gate)
        {
            ThrowIfFailed();
            long id;
            var rv = OpenBidiStream(_conn, &id, null);
            if (rv == 0)
            {
                var stream = new QuicStream(this, id, _chunks);
                _streams.Add(id, stream);
                wait = null;
                return stream;
            }

            if (rv != ErrStreamIdBlocked)
            {
                throw new QuicException($"ngtcp2_conn_open_bidi_stream: {ErrorText(rv)}");
            }

            _streamsAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = _streamsAvailable.Task;
            return null;
        }
    }

    /// <summary>Reads one datagram, or a GRO run of them <paramref name="segmentSize"/> bytes each, then flushes once.</summary>
    /// <returns>False once the connection has failed or closed.</returns>
    internal bool OnDatagrams(ReadOnlySpan<byte> datagrams, int segmentSize)
    {
        lock (_gate)
        {
            if (!ReadLocked(datagrams, segmentSize))
            {
                return false;
            }

            FlushLocked();
            return true;
        }
    }

    private bool ReadLocked(ReadOnlySpan<byte> datagrams, int segmentSize)
    {
        if (_failure is not null)
        {
            return false;
        }

        var now = Now();
        fixed (byte* packets = datagrams)
        {
            for (var offset = 0; offset < datagrams.Length; offset += segmentSize)
            {
                PacketInfo info = default;
                var rv = ReadPacket(_conn, SocketPath, PacketInfoVersion, &info, packets + offset,
                    (nuint)Math.Min(segmentSize, datagrams.Length - offset), now);
                if (rv != 0)
                {
                    FailLocked(OnReadErrorLocked(rv));
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// A client's receive step: reads what its socket holds (a bounded number of calls, so timers and
    /// writers get the lock between), then flushes once: one ack and one lock trip per run, not per datagram.
    /// </summary>
    /// <returns>False once the connection has failed or closed.</returns>
    private bool DrainSocket()
    {
        var fd = _socket.SafeHandle.DangerousGetHandle(); // the socket outlives the receive loop
        lock (_gate)
        {
            fixed (byte* buffer = _receiveBuffer)
            {
                for (var i = 0; i < MaxReceivesPerDrain; i++)
                {
                    var received = UdpNative.Receive(fd, buffer, PacketBufferSize, null, null, out var segmentSize);
                    if (received == -UdpNative.WouldBlock)
                    {
                        break;
                    }

                    if (received == -UdpNative.ConnectionRefused)
                    {
                        continue; // ICMP port unreachable from an earlier datagram: ngtcp2's loss recovery and timers decide
                    }

                    if (received < 0)
                    {
                        FailLocked(new QuicException($"UDP receive failed: errno {-received}"));
                        return false;
                    }

                    if (!ReadLocked(new ReadOnlySpan<byte>(buffer, received), segmentSize))
                    {
                        return false;
                    }
                }
            }

            FlushLocked();
            return _failure is null;
        }
    }

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

    /// <summary>Called under the lock when ngtcp2 rejects a datagram: tells the peer why (unless it closed first).</summary>
    private QuicException OnReadErrorLocked(int rv)
    {
        if (rv == ErrDraining && _statelessReset)
        {
            return new QuicException("QUIC connection reset by the peer (stateless reset: it no longer has this connection)");
        }

        if (rv == ErrDraining)
        {
            var peerError = stackalloc byte[ConnectionCloseErrorSize];
            GetConnectionCloseError(_conn, peerError);
            return new QuicException($"QUIC connection closed by the peer (error 0x{*(ulong*)(peerError + 8):x})");
        }

        if (rv != ErrDropConn)
        {
            var closeError = stackalloc byte[ConnectionCloseErrorSize];
            if (rv == ErrCrypto)
            {
                SetTransportErrorTlsAlert(closeError, GetTlsAlert(_conn), null, 0);
            }
            else
            {
                SetTransportErrorLibError(closeError, rv, null, 0);
            }

            SendConnectionCloseLocked(closeError);
        }

        if (rv == ErrCrypto)
        {
            var status = GnuTlsNative.SessionGetVerifyCertStatus(_tls);
            if (_peerRefusal is not null)
            {
                return new QuicException($"QUIC handshake failed: peer refused: {_peerRefusal}");
            }

            return new QuicException(status != 0 && _options is QuicClientOptions client
                ? $"QUIC handshake failed: the server's certificate did not verify for {client.ServerName} against {client.CaFile} (GnuTLS status 0x{status:x})"
                : $"QUIC handshake failed: {ErrorText(rv)} (TLS alert {GetTlsAlert(_conn)})");
        }

        return new QuicException($"QUIC read failed: {ErrorText(rv)}");
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

    internal (int Accepted, Task? Waiter) Write(QuicStream stream, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            ThrowIfClosed(stream);
            var space = (int)Math.Max(0, _options.StreamSendBuffer - stream.Send.Unacked);
            var accepted = Math.Min(space, data.Length);
            stream.Send.Append(data[..accepted]);
            FlushLocked();
            return (accepted, accepted < data.Length ? stream.WaitForSpace() : null);
        }
    }

    internal void CompleteWrites(QuicStream stream)
    {
        lock (_gate)
        {
            if (stream.Send.FinRequested)
            {
                return;
            }

            ThrowIfClosed(stream);
            stream.Send.FinRequested = true;
            FlushLocked();
        }
    }

    /// <summary>The reader took <paramref name="length"/> bytes: reopen that much stream and connection window.</summary>
    internal void OnConsumed(long streamId, int length)
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return;
            }

            _ = ExtendMaxStreamOffset(_conn, streamId, (ulong)length);
            ExtendMaxOffset(_conn, (ulong)length);
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

    /// <summary>Resets both directions of <paramref name="stream"/> (RESET_STREAM and STOP_SENDING).</summary>
    internal void AbortStream(QuicStream stream, ulong errorCode)
    {
        lock (_gate)
        {
            if (_failure is not null || stream.IsClosed)
            {
                return;
            }

            _ = ShutdownStream(_conn, stream.Id, errorCode);
            stream.OnClosed(new QuicException($"stream {stream.Id} aborted"));
            FlushLocked();
        }
    }

    private void ThrowIfClosed(QuicStream stream)
    {
        ThrowIfFailed();
        if (stream.IsClosed || stream.Send.FinRequested)
        {
            throw new QuicException($"stream {stream.Id} is closed for writing");
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
