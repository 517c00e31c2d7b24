using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tls;

/// <summary>
/// TLS termination for one listener config: the certificate is chosen by the client's SNI, ALPN
/// offers h2 (when the listener serves HTTP/2) and http/1.1, and a handshake not done within
/// the handshake timeout, or when shutdown begins, is given up. Built with the listener's
/// model, so a reload that names other files loads them before it commits.
/// </summary>
internal sealed partial class TlsTerminator
{
    private static readonly List<SslApplicationProtocol> Http2AndHttp11 = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];
    private static readonly List<SslApplicationProtocol> Http11Only = [SslApplicationProtocol.Http11];

    private readonly TlsConfig _config;
    private readonly List<SslApplicationProtocol> _protocols;
    private readonly string _listener;
    private readonly ListenerMetrics _metrics;
    private readonly ILogger _logger;

    public TlsTerminator(TlsConfig config, bool http2, string listener, ListenerMetrics metrics, ILogger logger)
    {
        _config = config;
        _protocols = http2 ? Http2AndHttp11 : Http11Only;
        _listener = listener;
        _metrics = metrics;
        _logger = logger;
        Certificates = [.. config.Certificates.Select(files => new ServerCertificate(files, listener, logger, OnReloaded))];
        foreach (var certificate in Certificates)
        {
            WarnIfExpired(certificate.Current.Leaf, certificate.Files);
        }
    }

    public IReadOnlyList<ServerCertificate> Certificates { get; }

    /// <summary>
    /// Runs the server side of the handshake on <paramref name="connection"/>; the connection
    /// with its plaintext as transport, or null (counted and logged) if the handshake failed.
    /// </summary>
    public async ValueTask<TlsConnection?> AuthenticateAsync(ConnectionContext connection, CancellationToken stopping)
    {
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(_config.HandshakeTimeout);
        try
        {
            await ssl.AuthenticateAsServerAsync(SelectOptionsAsync, this, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Scanners, old clients and plain-text requests end here: one counter and a debug line, not an error each.
            await ssl.DisposeAsync().ConfigureAwait(false);
            _metrics.TlsHandshakeFailed();
            var reason = deadline.IsCancellationRequested && !stopping.IsCancellationRequested ? $"no handshake within {_config.HandshakeTimeout.TotalSeconds:0.###}s" : ex.Message;
            LogHandshakeFailed(_logger, connection.ConnectionId, _listener, connection.RemoteEndPoint?.ToString() ?? "?", reason);
            return null;
        }

        _metrics.TlsHandshakeCompleted(ssl.NegotiatedApplicationProtocol == SslApplicationProtocol.Http2);
        return new TlsConnection(connection, ssl, carrier);
    }

    /// <summary>The certificate for <paramref name="serverName"/>: the first that is for it, else the first configured.</summary>
    public CertificateChain Select(string? serverName)
    {
        if (!string.IsNullOrEmpty(serverName))
        {
            foreach (var certificate in Certificates)
            {
                var chain = certificate.Current;
                if (chain.IsFor(serverName))
                {
                    return chain;
                }
            }
        }

        return Certificates[0].Current;
    }

    private static ValueTask<SslServerAuthenticationOptions> SelectOptionsAsync(SslStream stream, SslClientHelloInfo hello, object? state, CancellationToken cancellationToken)
    {
        var terminator = (TlsTerminator)state!;
        return ValueTask.FromResult(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = terminator.Select(hello.ServerName).Context,
            ApplicationProtocols = terminator._protocols,
            EnabledSslProtocols = terminator._config.Protocols,
            ClientCertificateRequired = false,
            AllowRenegotiation = false,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        });
    }

    private void OnReloaded(ServerCertificate certificate) => WarnIfExpired(certificate.Current.Leaf, certificate.Files);

    private void WarnIfExpired(X509Certificate2 leaf, CertificateFiles files)
    {
        var now = DateTime.UtcNow;
        if (now > leaf.NotAfter.ToUniversalTime() || now < leaf.NotBefore.ToUniversalTime())
        {
            LogOutsideValidity(_logger, _listener, files.Certificate, leaf.NotBefore.ToUniversalTime(), leaf.NotAfter.ToUniversalTime());
        }
    }

    [LoggerMessage(EventId = 603, Level = LogLevel.Debug, Message = "Connection {ConnectionId} on listener {Listener} from {Remote}: TLS handshake failed: {Reason}")]
    private static partial void LogHandshakeFailed(ILogger logger, string connectionId, string listener, string remote, string reason);

    [LoggerMessage(EventId = 604, Level = LogLevel.Warning, Message = "Listener {Listener}: certificate {File} is not valid now (valid from {NotBefore:u} to {NotAfter:u}); clients that check it will refuse the connection")]
    private static partial void LogOutsideValidity(ILogger logger, string listener, string file, DateTime notBefore, DateTime notAfter);
}
