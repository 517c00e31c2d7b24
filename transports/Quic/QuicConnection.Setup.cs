using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// Creating the ngtcp2 connection and its GnuTLS session, for either role.
internal sealed unsafe partial class QuicConnection
{
    private const int LocalCidLength = 16;

    private void StartClient(QuicClientOptions options)
    {
        InitializePath(_socket.LocalEndPoint!.Serialize(), _socket.RemoteEndPoint!.Serialize());
        _receiveBuffer = GC.AllocateUninitializedArray<byte>(PacketBufferSize, pinned: true);
        UdpNative.TryEnableGro(_socket);
        SetUpClientTls(options);

        Cid dcid, scid;
        dcid.DataLength = 18;
        RandomNumberGenerator.Fill(new Span<byte>(dcid.Data, 18));
        scid.DataLength = LocalCidLength;
        RandomNumberGenerator.Fill(new Span<byte>(scid.Data, LocalCidLength));
        CreateConnection(server: false, &dcid, &scid, ProtoVersionV1, originalDcid: null);
        lock (_gate)
        {
            FlushLocked();
        }

        _receiveLoop = ReceiveLoopAsync();
    }

    /// <summary>
    /// Accepts a client Initial arriving on <paramref name="listener"/>'s socket.
    /// </summary>
    /// <returns>The new connection (already fed the datagram), or null when the datagram is not an acceptable Initial.</returns>
    internal static QuicConnection? Accept(QuicListener listener, Socket socket, SocketAddress local, SocketAddress peer,
        ReadOnlySpan<byte> datagram, QuicServerOptions options)
    {
        PacketHeader header;
        fixed (byte* packet = datagram)
        {
            if (Ngtcp2Native.Accept(&header, packet, (nuint)datagram.Length) != 0)
            {
                return null;
            }
        }

        var connection = new QuicConnection(socket, options, listener, peer);
        try
        {
            connection.InitializePath(local, peer);
            connection.SetUpServerTls(options);
            Cid scid;
            scid.DataLength = LocalCidLength;
            RandomNumberGenerator.Fill(new Span<byte>(scid.Data, LocalCidLength));
            lock (connection._gate)
            {
                // The client keeps addressing its Initials to the DCID it chose until our first packet reaches it.
                connection.RouteLocked(new ReadOnlySpan<byte>(header.Dcid.Data, (int)header.Dcid.DataLength));
                connection.RouteLocked(new ReadOnlySpan<byte>(scid.Data, LocalCidLength));
            }

            connection.CreateConnection(server: true, &header.Scid, &scid, header.Version, &header.Dcid);
        }
        catch
        {
            connection.BeginDispose();
            connection.ReleaseNative();
            throw;
        }

        connection.OnDatagrams(datagram, datagram.Length);
        return connection;
    }

    private void InitializePath(SocketAddress local, SocketAddress remote)
    {
        SetAddr(&SocketPath->Local, SockAddr(0), local);
        SetAddr(&SocketPath->Remote, SockAddr(1), remote);
        ScratchPath->Local.SockAddr = SockAddr(2);
        ScratchPath->Remote.SockAddr = SockAddr(3);
        ConnRef->GetConn = &GetConnection;
        ConnRef->UserData = (void*)GCHandle.ToIntPtr(_self);
    }

    private static void SetAddr(Addr* addr, byte* storage, SocketAddress address)
    {
        var length = Math.Min(address.Size, SockAddrStorage);
        address.Buffer.Span[..length].CopyTo(new Span<byte>(storage, length));
        addr->SockAddr = storage;
        addr->AddrLength = (uint)length;
    }

    private void RouteLocked(ReadOnlySpan<byte> connectionId)
    {
        var id = connectionId.ToArray();
        _localConnectionIds.Add(id);
        _listener?.Route(id, this);
    }

    private nint NewTlsSession(uint role)
    {
        nint credentials, session;
        GnuTlsNative.Check(GnuTlsNative.CertificateAllocateCredentials(&credentials), "gnutls_certificate_allocate_credentials");
        _credentials = credentials;
        GnuTlsNative.Check(GnuTlsNative.Init(&session, role | GnuTlsNative.NoEndOfEarlyData), "gnutls_init");
        _tls = session;
        nint errorPosition;
        GnuTlsNative.Check(GnuTlsNative.PrioritySetDirect(session, GnuTlsNative.Priorities, &errorPosition), "gnutls_priority_set_direct");
        return session;
    }

    private void SetUpClientTls(QuicClientOptions options)
    {
        var session = NewTlsSession(GnuTlsNative.Client);
        var loaded = GnuTlsNative.CertificateSetTrustFile(_credentials, options.CaFile, GnuTlsNative.X509FormatPem);
        if (loaded <= 0)
        {
            throw new QuicException($"no CA certificate loaded from {options.CaFile}: {(loaded < 0 ? GnuTlsNative.ErrorText(loaded) : "empty")}");
        }

        if (ConfigureClientSession(session) != 0)
        {
            throw new QuicException("ngtcp2_crypto_gnutls_configure_client_session failed");
        }

        if (options.CertificateFile is not null)
        {
            GnuTlsNative.Check(GnuTlsNative.CertificateSetKeyFile(_credentials, options.CertificateFile, options.KeyFile ?? options.CertificateFile, GnuTlsNative.X509FormatPem),
                $"loading {options.CertificateFile} / {options.KeyFile}");
        }

        GnuTlsNative.SessionSetPtr(session, ConnRef);
        GnuTlsNative.Check(GnuTlsNative.CredentialsSet(session, GnuTlsNative.CredentialsCertificate, _credentials), "gnutls_credentials_set");
        _verifiedName = Marshal.StringToCoTaskMemUTF8(options.ServerName);
        GnuTlsNative.SessionSetVerifyCert(session, _verifiedName, 0);
        var name = Encoding.ASCII.GetBytes(options.ServerName);
        fixed (byte* namePtr = name)
        {
            GnuTlsNative.Check(GnuTlsNative.ServerNameSet(session, GnuTlsNative.NameDns, namePtr, (nuint)name.Length), "gnutls_server_name_set");
        }

        FinishSessionSetup(session, 0);
    }

    private void SetUpServerTls(QuicServerOptions options)
    {
        var session = NewTlsSession(GnuTlsNative.Server);
        GnuTlsNative.Check(GnuTlsNative.CertificateSetKeyFile(_credentials, options.CertificateFile, options.KeyFile, GnuTlsNative.X509FormatPem),
            $"loading {options.CertificateFile} / {options.KeyFile}");
        if (ConfigureServerSession(session) != 0)
        {
            throw new QuicException("ngtcp2_crypto_gnutls_configure_server_session failed");
        }

        if (options.ClientCaFile is not null || options.ValidatePeerCertificate is not null)
        {
            GnuTlsNative.CertificateServerSetRequest(session, GnuTlsNative.CertificateRequire);
        }

        if (options.ClientCaFile is not null)
        {
            var loaded = GnuTlsNative.CertificateSetTrustFile(_credentials, options.ClientCaFile, GnuTlsNative.X509FormatPem);
            if (loaded <= 0)
            {
                throw new QuicException($"no CA certificate loaded from {options.ClientCaFile}: {(loaded < 0 ? GnuTlsNative.ErrorText(loaded) : "empty")}");
            }

            GnuTlsNative.SessionSetVerifyCert(session, 0, 0); // chain only: the client's name is the validator's business
        }

        GnuTlsNative.SessionSetPtr(session, ConnRef);
        GnuTlsNative.Check(GnuTlsNative.CredentialsSet(session, GnuTlsNative.CredentialsCertificate, _credentials), "gnutls_credentials_set");
        FinishSessionSetup(session, GnuTlsNative.AlpnMandatory);
    }

    /// <summary>What both roles set last: the peer check hook and ALPN.</summary>
    private void FinishSessionSetup(nint session, uint alpnFlags)
    {
        if (_options.ValidatePeerCertificate is not null)
        {
            GnuTlsNative.SessionSetVerifyFunction(session, &VerifyPeer);
        }

        var alpn = Encoding.ASCII.GetBytes(_options.Alpn);
        fixed (byte* alpnPtr = alpn)
        {
            var datum = new GnuTlsNative.Datum { Data = alpnPtr, Size = (uint)alpn.Length };
            GnuTlsNative.Check(GnuTlsNative.AlpnSetProtocols(session, &datum, 1, alpnFlags), "gnutls_alpn_set_protocols");
        }
    }

    private void CreateConnection(bool server, Cid* dcid, Cid* scid, uint version, Cid* originalDcid)
    {
        EnsureSupportedVersion();
        Callbacks callbacks = default;
        SetCryptoCallbacks(&callbacks, server);
        callbacks.HandshakeCompleted = (nint)(delegate* unmanaged<nint, void*, int>)&OnHandshakeCompleted;
        callbacks.RecvStreamData = (nint)(delegate* unmanaged<nint, uint, long, ulong, byte*, nuint, void*, void*, int>)&OnReceiveStreamData;
        callbacks.AckedStreamDataOffset = (nint)(delegate* unmanaged<nint, long, ulong, ulong, void*, void*, int>)&OnAckedStreamData;
        callbacks.StreamOpen = (nint)(delegate* unmanaged<nint, long, void*, int>)&OnStreamOpen;
        callbacks.StreamClose = (nint)(delegate* unmanaged<nint, uint, long, ulong, void*, void*, int>)&OnStreamClose;
        callbacks.StreamReset = (nint)(delegate* unmanaged<nint, long, ulong, ulong, void*, void*, int>)&OnStreamReset;
        callbacks.ExtendMaxLocalStreamsBidi = (nint)(delegate* unmanaged<nint, ulong, void*, int>)&OnExtendMaxLocalStreamsBidi;
        callbacks.Rand = (nint)(delegate* unmanaged<byte*, nuint, void*, void>)&OnRand;
        callbacks.GetNewConnectionId = (nint)(delegate* unmanaged<nint, Cid*, byte*, nuint, void*, int>)&OnGetNewConnectionId;
        callbacks.RecvStatelessReset = (nint)(delegate* unmanaged<nint, void*, void*, int>)&OnStatelessReset;

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
        *(ulong*)(parameters + TransportParamsMaxStreamsBidiOffset) = (ulong)_options.MaxIncomingBidirectionalStreams;
        *(ulong*)(parameters + TransportParamsMaxStreamsUniOffset) = (ulong)_options.MaxIncomingUnidirectionalStreams;
        *(ulong*)(parameters + TransportParamsMaxIdleTimeoutOffset) = Nanoseconds(_options.IdleTimeout);
        if (originalDcid is not null)
        {
            *(Cid*)(parameters + TransportParamsOriginalDcidOffset) = *originalDcid;
            parameters[TransportParamsStatelessResetTokenPresentOffset] = 1;
            _listener!.StatelessResetToken(new ReadOnlySpan<byte>(scid->Data, (int)scid->DataLength),
                new Span<byte>(parameters + TransportParamsStatelessResetTokenOffset, StatelessResetTokenLength));
        }

        nint conn;
        var userData = (void*)GCHandle.ToIntPtr(_self);
        var rv = server
            ? ServerNew(&conn, dcid, scid, SocketPath, version, CallbacksVersion, &callbacks, SettingsVersion, settings,
                TransportParamsVersion, parameters, null, userData)
            : ClientNew(&conn, dcid, scid, SocketPath, version, CallbacksVersion, &callbacks, SettingsVersion, settings,
                TransportParamsVersion, parameters, null, userData);
        if (rv != 0)
        {
            throw new QuicException($"ngtcp2_conn_{(server ? "server" : "client")}_new: {ErrorText(rv)}");
        }

        lock (_gate)
        {
            _conn = conn;
            SetTlsNativeHandle(conn, _tls);
            if (_options.KeepAliveInterval is { } keepAlive)
            {
                SetKeepAliveTimeout(conn, Nanoseconds(keepAlive));
            }
        }
    }
}
