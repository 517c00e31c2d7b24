using System.Net;
using System.Net.Security;
using Forwarder.L7.Http2.Codec;
using Forwarder.Tls;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>Makes the connections an <see cref="Http2ClientPool"/> speaks HTTP/2 on: h2c with prior knowledge, or TLS with ALPN h2.</summary>
internal static class Http2ClientDialer
{
    /// <summary>Plain TCP (or whatever <paramref name="dialer"/> makes): the client speaks first, with the preface.</summary>
    public static Func<CancellationToken, ValueTask<ConnectionContext>> Cleartext(IConnectionFactory dialer, EndPoint endPoint)
        => cancellationToken => dialer.ConnectAsync(endPoint, cancellationToken);

    /// <summary>TLS over <paramref name="dialer"/>'s connection, offering only h2; a server that does not choose it is refused.</summary>
    public static Func<CancellationToken, ValueTask<ConnectionContext>> Tls(IConnectionFactory dialer, EndPoint endPoint, SslClientAuthenticationOptions tls)
        => cancellationToken => ConnectTlsAsync(dialer, endPoint, H2Only(tls), cancellationToken);

    /// <summary>A copy of the caller's options offering only h2: the caller's (perhaps shared) options are left as they are.</summary>
    private static SslClientAuthenticationOptions H2Only(SslClientAuthenticationOptions tls) => new()
    {
        AllowRenegotiation = tls.AllowRenegotiation,
        AllowTlsResume = tls.AllowTlsResume,
        ApplicationProtocols = [SslApplicationProtocol.Http2],
        CertificateChainPolicy = tls.CertificateChainPolicy,
        CertificateRevocationCheckMode = tls.CertificateRevocationCheckMode,
        CipherSuitesPolicy = tls.CipherSuitesPolicy,
        ClientCertificateContext = tls.ClientCertificateContext,
        ClientCertificates = tls.ClientCertificates,
        EnabledSslProtocols = tls.EnabledSslProtocols,
        EncryptionPolicy = tls.EncryptionPolicy,
        LocalCertificateSelectionCallback = tls.LocalCertificateSelectionCallback,
        RemoteCertificateValidationCallback = tls.RemoteCertificateValidationCallback,
        TargetHost = tls.TargetHost,
    };

    private static async ValueTask<ConnectionContext> ConnectTlsAsync(IConnectionFactory dialer, EndPoint endPoint, SslClientAuthenticationOptions tls, CancellationToken cancellationToken)
    {
        var connection = await dialer.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        try
        {
            await ssl.AuthenticateAsClientAsync(tls, cancellationToken).ConfigureAwait(false);
            if (ssl.NegotiatedApplicationProtocol != SslApplicationProtocol.Http2)
            {
                throw new Http2ClientException($"The server at {endPoint} did not choose h2 in ALPN.", Http2ErrorCode.Http11Required, canRetry: false);
            }
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new TlsConnection(connection, ssl, carrier);
    }
}
