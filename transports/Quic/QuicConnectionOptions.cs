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
}

internal sealed record QuicClientOptions : QuicConnectionOptions
{
    /// <summary>The name the server's certificate must carry (also sent as SNI).</summary>
    public required string ServerName { get; init; }

    /// <summary>PEM file of the CA(s) the server's chain must end at.</summary>
    public required string CaFile { get; init; }
}

internal sealed record QuicServerOptions : QuicConnectionOptions
{
    /// <summary>PEM certificate chain the server presents.</summary>
    public required string CertificateFile { get; init; }

    public required string KeyFile { get; init; }
}
