using System.Runtime.InteropServices;

namespace Forwarder.Transports.Quic;

// GnuTLS 3.7 (libgnutls30): the session and credential calls a QUIC client handshake needs.
internal static unsafe partial class GnuTlsNative
{
    private const string Lib = "libgnutls.so.30";

    public const uint Server = 1;
    public const uint Client = 1 << 1;
    public const uint AlpnMandatory = 1;
    public const int CertificateRequire = 2;
    public const uint NoEndOfEarlyData = 1 << 22;
    public const int CredentialsCertificate = 1;
    public const int X509FormatPem = 1;
    public const int NameDns = 1;

    // TLS 1.3 only, the AEADs QUIC allows (ngtcp2's examples use the same list).
    public const string Priorities =
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";

    [StructLayout(LayoutKind.Sequential)]
    public struct Datum
    {
        public byte* Data;
        public uint Size;
    }

    [LibraryImport(Lib, EntryPoint = "gnutls_init")]
    public static partial int Init(nint* session, uint flags);

    [LibraryImport(Lib, EntryPoint = "gnutls_deinit")]
    public static partial void Deinit(nint session);

    [LibraryImport(Lib, EntryPoint = "gnutls_priority_set_direct", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int PrioritySetDirect(nint session, string priorities, nint* errorPosition);

    [LibraryImport(Lib, EntryPoint = "gnutls_session_set_ptr")]
    public static partial void SessionSetPtr(nint session, void* pointer);

    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_allocate_credentials")]
    public static partial int CertificateAllocateCredentials(nint* credentials);

    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_free_credentials")]
    public static partial void CertificateFreeCredentials(nint credentials);

    /// <returns>The number of certificates loaded, or a negative error.</returns>
    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_set_x509_trust_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int CertificateSetTrustFile(nint credentials, string caFile, int format);

    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_set_x509_key_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int CertificateSetKeyFile(nint credentials, string certificateFile, string keyFile, int format);

    [LibraryImport(Lib, EntryPoint = "gnutls_credentials_set")]
    public static partial int CredentialsSet(nint session, int type, nint credentials);

    /// <summary>
    /// Makes the handshake itself fail unless the peer's chain ends at a trusted CA and names the host.
    /// GnuTLS keeps the hostname pointer (no copy): it must outlive the session.
    /// </summary>
    [LibraryImport(Lib, EntryPoint = "gnutls_session_set_verify_cert")]
    public static partial void SessionSetVerifyCert(nint session, nint hostname, uint flags);

    /// <summary>A per-session hook the handshake calls with the peer's certificates in hand; non-zero refuses the peer.</summary>
    [LibraryImport(Lib, EntryPoint = "gnutls_session_set_verify_function")]
    public static partial void SessionSetVerifyFunction(nint session, delegate* unmanaged<nint, int> verify);

    [LibraryImport(Lib, EntryPoint = "gnutls_session_get_ptr")]
    public static partial void* SessionGetPtr(nint session);

    /// <summary>The peer's chain as DER, leaf first; valid until the session ends.</summary>
    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_get_peers")]
    public static partial Datum* CertificateGetPeers(nint session, uint* count);

    [LibraryImport(Lib, EntryPoint = "gnutls_certificate_server_set_request")]
    public static partial void CertificateServerSetRequest(nint session, int request);

    [LibraryImport(Lib, EntryPoint = "gnutls_session_get_verify_cert_status")]
    public static partial uint SessionGetVerifyCertStatus(nint session);

    [LibraryImport(Lib, EntryPoint = "gnutls_server_name_set")]
    public static partial int ServerNameSet(nint session, int type, byte* name, nuint length);

    [LibraryImport(Lib, EntryPoint = "gnutls_alpn_set_protocols")]
    public static partial int AlpnSetProtocols(nint session, Datum* protocols, uint count, uint flags);

    [LibraryImport(Lib, EntryPoint = "gnutls_strerror")]
    public static partial byte* StrError(int error);

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8((nint)StrError(error)) ?? error.ToString();

    public static void Check(int result, string call)
    {
        if (result < 0)
        {
            throw new QuicException($"{call} failed: {ErrorText(result)}");
        }
    }
}
