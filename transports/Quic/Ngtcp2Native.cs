using System.Runtime.InteropServices;

namespace Forwarder.Transports.Quic;

// ngtcp2 0.12 (Debian 12's libngtcp2-9 / libngtcp2-crypto-gnutls2): exactly the calls the transport
// makes. Versioned structs are passed with the *_VERSION_V1 values the 0.12 headers' macros expand to.
internal static unsafe partial class Ngtcp2Native
{
    private const string Lib = "libngtcp2.so.9";
    private const string CryptoLib = "libngtcp2_crypto_gnutls.so.2";

    public const uint ProtoVersionV1 = 1;
    public const int CallbacksVersion = 1;
    public const int SettingsVersion = 1;
    public const int TransportParamsVersion = 1;
    public const int PacketInfoVersion = 1;
    public const int MaxCidLength = 20;
    public const int StatelessResetTokenLength = 16;

    public const int ErrStreamIdBlocked = -208;
    public const int ErrStreamDataBlocked = -210;
    public const int ErrCrypto = -215;
    public const int ErrStreamShutWr = -221;
    public const int ErrStreamNotFound = -222;
    public const int ErrDraining = -231;
    public const int ErrDropConn = -242;
    public const int ErrIdleClose = -248;
    public const int ErrVersionNegotiation = -245;
    public const int MinStatelessResetRandomLength = 5;
    public const int ErrCallbackFailure = -502;

    public const uint StreamDataFlagFin = 0x01;
    public const uint WriteStreamFlagFin = 0x02;

    // sizeof/offsetof from the 0.12.1 headers on x86-64/arm64 (LP64).
    public const int SettingsSize = 184;
    public const int SettingsInitialTsOffset = 48;
    public const int SettingsHandshakeTimeoutOffset = 136;
    public const int TransportParamsSize = 344;
    public const int TransportParamsOriginalDcidOffset = 96;
    public const int TransportParamsMaxStreamDataBidiLocalOffset = 192;
    public const int TransportParamsMaxStreamDataBidiRemoteOffset = 200;
    public const int TransportParamsMaxStreamDataUniOffset = 208;
    public const int TransportParamsMaxDataOffset = 216;
    public const int TransportParamsMaxStreamsBidiOffset = 224;
    public const int TransportParamsMaxStreamsUniOffset = 232;
    public const int TransportParamsMaxIdleTimeoutOffset = 240;
    public const int TransportParamsStatelessResetTokenPresentOffset = 288;
    public const int TransportParamsStatelessResetTokenOffset = 292;
    public const int ConnectionCloseErrorSize = 40;

    [StructLayout(LayoutKind.Sequential)]
    public struct Cid
    {
        public nuint DataLength;
        public fixed byte Data[MaxCidLength];
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Addr
    {
        public void* SockAddr;
        public uint AddrLength;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Ngtcp2Path
    {
        public Addr Local;
        public Addr Remote;
        public void* UserData;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PacketInfo
    {
        public byte Ecn;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Vec
    {
        public byte* Base;
        public nuint Length;
    }

    /// <summary>ngtcp2_pkt_hd: only the fields the server reads are named.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 112)]
    public struct PacketHeader
    {
        [FieldOffset(0)] public Cid Dcid;
        [FieldOffset(32)] public Cid Scid;
        [FieldOffset(104)] public uint Version;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct VersionCid
    {
        public uint Version;
        public byte* Dcid;
        public nuint DcidLength;
        public byte* Scid;
        public nuint ScidLength;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct CryptoConnRef
    {
        public delegate* unmanaged<CryptoConnRef*, nint> GetConn;
        public void* UserData;
    }

    // ngtcp2_callbacks: 40 function pointers in header order.
    [StructLayout(LayoutKind.Sequential)]
    public struct Callbacks
    {
        public nint ClientInitial, RecvClientInitial, RecvCryptoData, HandshakeCompleted, RecvVersionNegotiation;
        public nint Encrypt, Decrypt, HpMask, RecvStreamData, AckedStreamDataOffset;
        public nint StreamOpen, StreamClose, RecvStatelessReset, RecvRetry, ExtendMaxLocalStreamsBidi;
        public nint ExtendMaxLocalStreamsUni, Rand, GetNewConnectionId, RemoveConnectionId, UpdateKey;
        public nint PathValidation, SelectPreferredAddr, StreamReset, ExtendMaxRemoteStreamsBidi, ExtendMaxRemoteStreamsUni;
        public nint ExtendMaxStreamData, DcidStatus, HandshakeConfirmed, RecvNewToken, DeleteCryptoAeadCtx;
        public nint DeleteCryptoCipherCtx, RecvDatagram, AckDatagram, LostDatagram, GetPathChallengeData;
        public nint StreamStopSending, VersionNegotiation, RecvRxKey, RecvTxKey, EarlyDataRejected;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Info
    {
        public int Age;
        public int VersionNumber;
        public byte* VersionText;
    }

    [LibraryImport(Lib, EntryPoint = "ngtcp2_version")]
    private static partial Info* Version(int leastVersion);

    private static readonly Lazy<string?> s_unsupportedVersion = new(() =>
    {
        var info = Version(0);
        return info->VersionNumber >> 8 == 0x000c ? null : Marshal.PtrToStringUTF8((nint)info->VersionText);
    });

    /// <summary>The struct offsets here are 0.12's: refuse any other minor version rather than corrupt memory.</summary>
    public static void EnsureSupportedVersion()
    {
        if (s_unsupportedVersion.Value is { } found)
        {
            throw new QuicException($"the QUIC transport is built for ngtcp2 0.12 (Debian 12's libngtcp2-9); {Lib} is {found}");
        }
    }

    [LibraryImport(Lib, EntryPoint = "ngtcp2_settings_default_versioned")]
    public static partial void SettingsDefault(int version, void* settings);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_transport_params_default_versioned")]
    public static partial void TransportParamsDefault(int version, void* parameters);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_client_new_versioned")]
    public static partial int ClientNew(nint* conn, Cid* dcid, Cid* scid, Ngtcp2Path* path, uint version,
        int callbacksVersion, Callbacks* callbacks, int settingsVersion, void* settings,
        int transportParamsVersion, void* parameters, void* mem, void* userData);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_server_new_versioned")]
    public static partial int ServerNew(nint* conn, Cid* dcid, Cid* scid, Ngtcp2Path* path, uint version,
        int callbacksVersion, Callbacks* callbacks, int settingsVersion, void* settings,
        int transportParamsVersion, void* parameters, void* mem, void* userData);

    /// <returns>0 when the datagram is a client Initial a server may accept.</returns>
    [LibraryImport(Lib, EntryPoint = "ngtcp2_accept")]
    public static partial int Accept(PacketHeader* header, byte* packet, nuint length);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_pkt_decode_version_cid")]
    public static partial int DecodeVersionCid(VersionCid* result, byte* packet, nuint length, nuint shortDcidLength);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_pkt_write_version_negotiation")]
    public static partial nint WriteVersionNegotiation(byte* dest, nuint destLength, byte unusedRandom, byte* dcid, nuint dcidLength,
        byte* scid, nuint scidLength, uint* versions, nuint versionCount);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_pkt_write_stateless_reset")]
    public static partial nint WriteStatelessReset(byte* dest, nuint destLength, byte* token, byte* random, nuint randomLength);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_del")]
    public static partial void ConnDelete(nint conn);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_set_tls_native_handle")]
    public static partial void SetTlsNativeHandle(nint conn, nint tlsSession);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_read_pkt_versioned")]
    public static partial int ReadPacket(nint conn, Ngtcp2Path* path, int packetInfoVersion, PacketInfo* info,
        byte* packet, nuint length, ulong timestamp);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_writev_stream_versioned")]
    public static partial nint WritevStream(nint conn, Ngtcp2Path* path, int packetInfoVersion, PacketInfo* info,
        byte* dest, nuint destLength, nint* dataLength, uint flags, long streamId, Vec* data, nuint dataCount,
        ulong timestamp);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_write_connection_close_versioned")]
    public static partial nint WriteConnectionClose(nint conn, Ngtcp2Path* path, int packetInfoVersion, PacketInfo* info,
        byte* dest, nuint destLength, void* closeError, ulong timestamp);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_connection_close_error_set_application_error")]
    public static partial void SetApplicationError(void* closeError, ulong errorCode, byte* reason, nuint reasonLength);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_connection_close_error_set_transport_error_liberr")]
    public static partial void SetTransportErrorLibError(void* closeError, int libError, byte* reason, nuint reasonLength);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_connection_close_error_set_transport_error_tls_alert")]
    public static partial void SetTransportErrorTlsAlert(void* closeError, byte alert, byte* reason, nuint reasonLength);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_get_tls_alert")]
    public static partial byte GetTlsAlert(nint conn);

    /// <summary>The CONNECTION_CLOSE the peer sent (ngtcp2_connection_close_error: type at 0, error_code at 8).</summary>
    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_get_connection_close_error")]
    public static partial void GetConnectionCloseError(nint conn, void* closeError);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_get_expiry")]
    public static partial ulong GetExpiry(nint conn);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_handle_expiry")]
    public static partial int HandleExpiry(nint conn, ulong timestamp);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_extend_max_streams_bidi")]
    public static partial void ExtendMaxStreamsBidi(nint conn, nuint count);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_extend_max_streams_uni")]
    public static partial void ExtendMaxStreamsUni(nint conn, nuint count);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_set_keep_alive_timeout")]
    public static partial void SetKeepAliveTimeout(nint conn, ulong duration);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_get_handshake_completed")]
    public static partial int GetHandshakeCompleted(nint conn);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_open_bidi_stream")]
    public static partial int OpenBidiStream(nint conn, long* streamId, void* streamUserData);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_extend_max_stream_offset")]
    public static partial int ExtendMaxStreamOffset(nint conn, long streamId, ulong length);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_extend_max_offset")]
    public static partial void ExtendMaxOffset(nint conn, ulong length);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_conn_shutdown_stream")]
    public static partial int ShutdownStream(nint conn, long streamId, ulong appErrorCode);

    [LibraryImport(Lib, EntryPoint = "ngtcp2_strerror")]
    public static partial byte* StrError(int error);

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8((nint)StrError(error)) ?? error.ToString();

    [LibraryImport(CryptoLib, EntryPoint = "ngtcp2_crypto_gnutls_configure_server_session")]
    public static partial int ConfigureServerSession(nint session);

    [LibraryImport(CryptoLib, EntryPoint = "ngtcp2_crypto_gnutls_configure_client_session")]
    public static partial int ConfigureClientSession(nint session);

    /// <summary>The ngtcp2_crypto_* callbacks the library supplies, as raw function pointers.</summary>
    public static void SetCryptoCallbacks(Callbacks* callbacks, bool server)
    {
        var lib = NativeLibrary.Load(CryptoLib);
        if (server)
        {
            callbacks->RecvClientInitial = NativeLibrary.GetExport(lib, "ngtcp2_crypto_recv_client_initial_cb");
        }
        else
        {
            callbacks->ClientInitial = NativeLibrary.GetExport(lib, "ngtcp2_crypto_client_initial_cb");
            callbacks->RecvRetry = NativeLibrary.GetExport(lib, "ngtcp2_crypto_recv_retry_cb");
        }

        callbacks->RecvCryptoData = NativeLibrary.GetExport(lib, "ngtcp2_crypto_recv_crypto_data_cb");
        callbacks->Encrypt = NativeLibrary.GetExport(lib, "ngtcp2_crypto_encrypt_cb");
        callbacks->Decrypt = NativeLibrary.GetExport(lib, "ngtcp2_crypto_decrypt_cb");
        callbacks->HpMask = NativeLibrary.GetExport(lib, "ngtcp2_crypto_hp_mask_cb");
        callbacks->UpdateKey = NativeLibrary.GetExport(lib, "ngtcp2_crypto_update_key_cb");
        callbacks->DeleteCryptoAeadCtx = NativeLibrary.GetExport(lib, "ngtcp2_crypto_delete_crypto_aead_ctx_cb");
        callbacks->DeleteCryptoCipherCtx = NativeLibrary.GetExport(lib, "ngtcp2_crypto_delete_crypto_cipher_ctx_cb");
        callbacks->GetPathChallengeData = NativeLibrary.GetExport(lib, "ngtcp2_crypto_get_path_challenge_data_cb");
        callbacks->VersionNegotiation = NativeLibrary.GetExport(lib, "ngtcp2_crypto_version_negotiation_cb");
    }
}
