using System.Security.Cryptography.X509Certificates;

namespace Forwarder.Transports.Quic;

internal abstract record QuicConnectionOptions
{
    public required string Alpn { get; init; }

    public int StreamWindow { get; init; } = 256 * 1024;
    public int ConnectionWindow { get; init; } = 1024 * 1024;
    public int StreamSendBuffer { get; init; } = 256 * 1024;
    public int MaxIncomingBidirectionalStreams { get; init; } = 100;
    public int MaxIncomingUnidirectionalStreams { get; init; } = 3;
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Sends a PING after this long without sending, so an idle connection (and the NAT mappings under it) stays up; null: none.</summary>
    public TimeSpan? KeepAliveInterval { get; init; }

    /// <summary>
    /// Runs during the handshake on the peer's leaf certificate, after GnuTLS's own checks: null admits
    /// the peer, a reason refuses it (the handshake fails with that reason). This is where the mesh's
    /// own identity rules (the TCP link's checks) plug in.
    /// </summary>
    public Func<X509Certificate2, string?>? ValidatePeerCertificate { get; init; }
}

internal sealed record QuicClientOptions : QuicConnectionOptions
{
    /// <summary>The name the server's certificate must carry (also sent as SNI).</summary>
    public required string ServerName { get; init; }

    /// <summary>PEM file of the CA(s) the server's chain must end at.</summary>
    public required string CaFile { get; init; }

    /// <summary>This end's certificate chain (PEM), for servers that ask for one; with <see cref="KeyFile"/>.</summary>
    public string? CertificateFile { get; init; }

    public string? KeyFile { get; init; }
}

internal sealed record QuicServerOptions : QuicConnectionOptions
{
    /// <summary>PEM certificate chain the server presents.</summary>
    public required string CertificateFile { get; init; }

    public required string KeyFile { get; init; }

    /// <summary>When set, clients must present a certificate chaining to one of these CAs (PEM).</summary>
    public string? ClientCaFile { get; init; }

    /// <summary>
    /// The secret stateless reset tokens are derived from (HMAC-SHA256 of the connection ID). Keep the same
    /// one across restarts of a listener on the same address so peers of the old process trust the resets the
    /// new one sends them; null: a random key per listener, whose resets help only while it runs.
    /// </summary>
    public byte[]? StatelessResetKey { get; init; }
}
