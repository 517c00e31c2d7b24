namespace Forwarder.Transports.Quic;

internal sealed record QuicClientOptions
{
    /// <summary>The name the server's certificate must carry (also sent as SNI).</summary>
    public required string ServerName { get; init; }

    /// <summary>PEM file of the CA(s) the server's chain must end at.</summary>
    public required string CaFile { get; init; }

    public required string Alpn { get; init; }

    public int StreamWindow { get; init; } = 256 * 1024;
    public int ConnectionWindow { get; init; } = 1024 * 1024;
    public int StreamSendBuffer { get; init; } = 256 * 1024;
    public int MaxIncomingUnidirectionalStreams { get; init; } = 3;
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
