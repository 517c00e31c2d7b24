using System.Security.Authentication;

namespace Forwarder.Configuration;

/// <summary>TLS termination on a listener: the certificates it presents and what it accepts.</summary>
/// <param name="Certificates">Chosen by the name the client asks for (SNI); the first one when none matches.</param>
/// <param name="Protocols">TLS 1.2 and 1.3, or 1.3 only.</param>
/// <param name="HandshakeTimeout">From accept to a finished handshake; a client slower than that is closed.</param>
internal sealed record TlsConfig(IReadOnlyList<CertificateFiles> Certificates, SslProtocols Protocols, TimeSpan HandshakeTimeout)
{
    public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(10);
}

/// <summary>
/// A certificate and its private key, in PEM files (paths resolved against the config file's
/// folder). The certificate file holds the leaf first, then any intermediates to send with it.
/// </summary>
internal sealed record CertificateFiles(string Certificate, string Key);
