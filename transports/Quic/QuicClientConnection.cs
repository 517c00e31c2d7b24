using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

/// <summary>
/// A client QUIC connection over ngtcp2 + GnuTLS on one connected UDP socket. Every ngtcp2 call runs
/// under <see cref="_gate"/>: the receive loop, the expiry timer and stream reads/writes take it in
/// turn, and each of them ends by writing whatever ngtcp2 has to send.
/// </summary>
internal sealed unsafe partial class QuicClientConnection : IAsyncDisposable
{
    private const int PacketBufferSize = 64 * 1024;
    private const int SockAddrStorage = 128;

    private readonly object _gate = new();
    private readonly Socket _socket;
    private readonly QuicClientOptions _options;
    private readonly QuicChunkPool _chunks = new();
    private readonly Dictionary<long, QuicStream> _streams = [];
    private readonly byte[] _receiveBuffer = GC.AllocateUninitializedArray<byte>(PacketBufferSize, pinned: true);
    private readonly byte[] _sendBuffer = GC.AllocateUninitializedArray<byte>(PacketBufferSize, pinned: true);
    private readonly TaskCompletionSource _handshake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly Timer _timer;
    private readonly GCHandle _self;
    // One native block: conn_ref, the socket path (both sockaddrs) and a scratch path ngtcp2 fills on write.
    private readonly byte* _native;
    private TaskCompletionSource? _streamsAvailable;
    private nint _conn;
    private nint _tls;
    private nint _credentials;
    private nint _verifiedName;
    private Exception? _failure;
    private Task _receiveLoop = Task.CompletedTask;

    private QuicClientConnection(Socket socket, QuicClientOptions options)
    {
        _socket = socket;
        _options = options;
        _self = GCHandle.Alloc(this);
        _timer = new Timer(static state => ((QuicClientConnection)state!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
        _native = (byte*)NativeMemory.AllocZeroed((nuint)(sizeof(CryptoConnRef) + 2 * sizeof(Ngtcp2Path) + 4 * SockAddrStorage));
    }

    private CryptoConnRef* ConnRef => (CryptoConnRef*)_native;
    private Ngtcp2Path* SocketPath => (Ngtcp2Path*)(_native + sizeof(CryptoConnRef));
    private Ngtcp2Path* ScratchPath => SocketPath + 1;
    private byte* SockAddr(int i) => _native + sizeof(CryptoConnRef) + 2 * sizeof(Ngtcp2Path) + i * SockAddrStorage;

    public bool IsHandshakeComplete { get { lock (_gate) { return _conn != 0 && GetHandshakeCompleted(_conn) != 0; } } }

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

    /// <returns>False once the connection has failed or closed.</returns>
    private bool OnDatagram(int length)
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return false;
            }

            PacketInfo info = default;
            int rv;
            fixed (byte* packet = _receiveBuffer)
            {
                rv = ReadPacket(_conn, SocketPath, PacketInfoVersion, &info, packet, (nuint)length, Now());
            }

            if (rv != 0)
            {
                FailLocked(DescribeReadError(rv));
                return false;
            }

            FlushLocked();
            return true;
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
        NativeMemory.Free(_native);
    }

    private void BeginDispose()
    {
        lock (_gate)
        {
            if (_failure is null && _conn != 0)
            {
                SendConnectionCloseLocked();
            }

            FailLocked(new ObjectDisposedException(nameof(QuicClientConnection)));
        }
    }

    private void Start()
    {
        var remote = _socket.RemoteEndPoint!.Serialize();
        var local = _socket.LocalEndPoint!.Serialize();
        SetAddr(&SocketPath->Local, SockAddr(0), local);
        SetAddr(&SocketPath->Remote, SockAddr(1), remote);
        ScratchPath->Local.SockAddr = SockAddr(2);
        ScratchPath->Remote.SockAddr = SockAddr(3);
        ConnRef->GetConn = &GetConnection;
        ConnRef->UserData = (void*)GCHandle.ToIntPtr(_self);

        SetUpTls();
        CreateConnection();
        lock (_gate)
        {
            FlushLocked();
        }

        _receiveLoop = ReceiveLoopAsync();
    }

    private static void SetAddr(Addr* addr, byte* storage, SocketAddress address)
    {
        var length = Math.Min(address.Size, SockAddrStorage);
        address.Buffer.Span[..length].CopyTo(new Span<byte>(storage, length));
        addr->SockAddr = storage;
        addr->AddrLength = (uint)length;
    }

    private void SetUpTls()
    {
        nint credentials, session;
        GnuTlsNative.Check(GnuTlsNative.CertificateAllocateCredentials(&credentials), "gnutls_certificate_allocate_credentials");
        _credentials = credentials;
        var loaded = GnuTlsNative.CertificateSetTrustFile(credentials, _options.CaFile, GnuTlsNative.X509FormatPem);
        if (loaded <= 0)
        {
            throw new QuicException($"no CA certificate loaded from {_options.CaFile}: {(loaded < 0 ? GnuTlsNative.ErrorText(loaded) : "empty")}");
        }

        GnuTlsNative.Check(GnuTlsNative.Init(&session, GnuTlsNative.Client | GnuTlsNative.NoEndOfEarlyData), "gnutls_init");
        _tls = session;
        nint errorPosition;
        GnuTlsNative.Check(GnuTlsNative.PrioritySetDirect(session, GnuTlsNative.Priorities, &errorPosition), "gnutls_priority_set_direct");
        if (ConfigureClientSession(session) != 0)
        {
            throw new QuicException("ngtcp2_crypto_gnutls_configure_client_session failed");
        }

        GnuTlsNative.SessionSetPtr(session, ConnRef);
        GnuTlsNative.Check(GnuTlsNative.CredentialsSet(session, GnuTlsNative.CredentialsCertificate, credentials), "gnutls_credentials_set");
        _verifiedName = Marshal.StringToCoTaskMemUTF8(_options.ServerName);
        GnuTlsNative.SessionSetVerifyCert(session, _verifiedName, 0);

        var name = Encoding.ASCII.GetBytes(_options.ServerName);
        var alpn = Encoding.ASCII.GetBytes(_options.Alpn);
        fixed (byte* namePtr = name)
        fixed (byte* alpnPtr = alpn)
        {
            GnuTlsNative.Check(GnuTlsNative.ServerNameSet(session, GnuTlsNative.NameDns, namePtr, (nuint)name.Length), "gnutls_server_name_set");
            var datum = new GnuTlsNative.Datum { Data = alpnPtr, Size = (uint)alpn.Length };
            GnuTlsNative.Check(GnuTlsNative.AlpnSetProtocols(session, &datum, 1, 0), "gnutls_alpn_set_protocols");
        }
    }

    private void CreateConnection()
    {
        Cid dcid, scid;
        dcid.DataLength = 18;
        RandomNumberGenerator.Fill(new Span<byte>(dcid.Data, 18));
        scid.DataLength = 16;
        RandomNumberGenerator.Fill(new Span<byte>(scid.Data, 16));

        Callbacks callbacks = default;
        SetCryptoCallbacks(&callbacks);
        callbacks.HandshakeCompleted = (nint)(delegate* unmanaged<nint, void*, int>)&OnHandshakeCompleted;
        callbacks.RecvStreamData = (nint)(delegate* unmanaged<nint, uint, long, ulong, byte*, nuint, void*, void*, int>)&OnReceiveStreamData;
        callbacks.AckedStreamDataOffset = (nint)(delegate* unmanaged<nint, long, ulong, ulong, void*, void*, int>)&OnAckedStreamData;
        callbacks.StreamClose = (nint)(delegate* unmanaged<nint, uint, long, ulong, void*, void*, int>)&OnStreamClose;
        callbacks.StreamReset = (nint)(delegate* unmanaged<nint, long, ulong, ulong, void*, void*, int>)&OnStreamReset;
        callbacks.ExtendMaxLocalStreamsBidi = (nint)(delegate* unmanaged<nint, ulong, void*, int>)&OnExtendMaxLocalStreamsBidi;
        callbacks.Rand = (nint)(delegate* unmanaged<byte*, nuint, void*, void>)&OnRand;
        callbacks.GetNewConnectionId = (nint)(delegate* unmanaged<nint, Cid*, byte*, nuint, void*, int>)&OnGetNewConnectionId;

        var settings = stackalloc byte[SettingsSize];
        SettingsDefault(SettingsVersion, settings);
        *(ulong*)(settings + SettingsInitialTsOffset) = Now();
        *(ulong*)(settings + SettingsHandshakeTimeoutOffset) = Nanoseconds(_options.HandshakeTimeout);

        var parameters = stackalloc byte[TransportParamsSize];
        TransportParamsDefault(TransportParamsVersion, parameters);
        *(ulong*)(parameters + TransportParamsMaxStreamDataBidiLocalOffset) = (ulong)_options.StreamWindow;
        *(ulong*)(parameters + TransportParamsMaxStreamDataBidiRemoteOffset) = (ulong)_options.StreamWindow;
        *(ulong*)(parameters + TransportParamsMaxStreamDataUniOffset) = (ulong)_options.StreamWindow;
        *(ulong*)(parameters + TransportParamsMaxDataOffset) = (ulong)_options.ConnectionWindow;
        *(ulong*)(parameters + TransportParamsMaxStreamsUniOffset) = (ulong)_options.MaxIncomingUnidirectionalStreams;
        *(ulong*)(parameters + TransportParamsMaxIdleTimeoutOffset) = Nanoseconds(_options.IdleTimeout);

        nint conn;
        var rv = ClientNew(&conn, &dcid, &scid, SocketPath, ProtoVersionV1, CallbacksVersion, &callbacks,
            SettingsVersion, settings, TransportParamsVersion, parameters, null, (void*)GCHandle.ToIntPtr(_self));
        if (rv != 0)
        {
            throw new QuicException($"ngtcp2_conn_client_new: {ErrorText(rv)}");
        }

        _conn = conn;
        SetTlsNativeHandle(conn, _tls);
    }

    private QuicException DescribeReadError(int rv)
    {
        if (rv == ErrCrypto)
        {
            var status = GnuTlsNative.SessionGetVerifyCertStatus(_tls);
            return new QuicException(status != 0
                ? $"QUIC handshake failed: the server's certificate did not verify for {_options.ServerName} against {_options.CaFile} (GnuTLS status 0x{status:x})"
                : $"QUIC handshake failed: {ErrorText(rv)}");
        }

        return rv == ErrDraining ? new QuicException("QUIC connection closed by the peer") : new QuicException($"QUIC read failed: {ErrorText(rv)}");
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
            ThrowIfFailed();
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
            ThrowIfFailed();
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

    /// <summary>Writes stream data stream by stream, then acks and control frames, until ngtcp2 has nothing to send.</summary>
    private void FlushLocked()
    {
        if (_failure is not null)
        {
            return;
        }

        var now = Now();
        foreach (var stream in _streams.Values)
        {
            while (stream.Send.HasPending)
            {
                var vec = stream.Send.NextUnsent();
                var fin = stream.Send.FinRequested && stream.Send.Sent + (long)vec.Length == stream.Send.Written;
                var written = WritePacket(stream.Id, &vec, vec.Length == 0 ? 0u : 1u, fin ? WriteStreamFlagFin : 0, now, out var accepted);
                if (accepted >= 0)
                {
                    stream.Send.OnSent(accepted, fin && accepted == (long)vec.Length);
                }

                if (written == ErrStreamDataBlocked || written == ErrStreamShutWr || written == ErrStreamNotFound || written == 0)
                {
                    break;
                }

                if (written < 0)
                {
                    FailLocked(new QuicException($"ngtcp2_conn_writev_stream: {ErrorText((int)written)}"));
                    return;
                }

                if (!SendPacket((int)written) || accepted < 0)
                {
                    break; // congestion- or connection-window limited: the next ack or MAX_DATA resumes it
                }
            }
        }

        while (true)
        {
            var written = WritePacket(-1, null, 0, 0, now, out _);
            if (written <= 0)
            {
                if (written < 0)
                {
                    FailLocked(new QuicException($"ngtcp2_conn_write_pkt: {ErrorText((int)written)}"));
                }

                break;
            }

            if (!SendPacket((int)written))
            {
                break;
            }
        }

        ArmTimerLocked();
    }

    private nint WritePacket(long streamId, Vec* data, nuint count, uint flags, ulong now, out nint accepted)
    {
        PacketInfo info = default;
        nint datalen = -1;
        nint written;
        fixed (byte* dest = _sendBuffer)
        {
            // One datagram at a time for now: GSO batching is the next step.
            written = WritevStream(_conn, ScratchPath, PacketInfoVersion, &info, dest, 1452, &datalen, flags, streamId, data, count, now);
        }

        accepted = datalen;
        return written;
    }

    private bool SendPacket(int length)
    {
        try
        {
            _socket.Send(_sendBuffer.AsSpan(0, length), SocketFlags.None);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.NoBufferSpaceAvailable or SocketError.ConnectionRefused)
        {
            return false; // dropped like any lost datagram: ngtcp2's loss recovery resends it
        }
    }

    private void ArmTimerLocked()
    {
        var expiry = GetExpiry(_conn);
        if (expiry == ulong.MaxValue)
        {
            _timer.Change(Timeout.Infinite, Timeout.Infinite);
            return;
        }

        var now = Now();
        var dueMs = expiry <= now ? 0 : (long)Math.Ceiling((expiry - now) / 1_000_000.0);
        _timer.Change(dueMs, Timeout.Infinite);
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
    }

    private void SendConnectionCloseLocked()
    {
        var closeError = stackalloc byte[ConnectionCloseErrorSize];
        SetApplicationError(closeError, 0, null, 0);
        PacketInfo info = default;
        nint written;
        fixed (byte* dest = _sendBuffer)
        {
            written = WriteConnectionClose(_conn, ScratchPath, PacketInfoVersion, &info, dest, 1452, closeError, Now());
        }

        if (written > 0)
        {
            SendPacket((int)written);
        }
    }

    private static ulong Now() => (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    private static ulong Nanoseconds(TimeSpan span) => (ulong)span.Ticks * 100;

    private static QuicClientConnection From(void* userData) => (QuicClientConnection)GCHandle.FromIntPtr((nint)userData).Target!;
}
