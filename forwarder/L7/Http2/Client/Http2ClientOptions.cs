using System.Buffers;

namespace Forwarder.L7.Http2.Client;

/// <summary>How upstream HTTP/2 connections are run: windows, limits, timers, and the pool's size.</summary>
internal sealed record Http2ClientOptions
{
    /// <summary>
    /// The receive window each stream opens with (SETTINGS_INITIAL_WINDOW_SIZE): what a stream can
    /// make this side buffer before any of its body is consumed, whatever its budget.
    /// </summary>
    public int InitialStreamWindow { get; init; } = 64 * 1024;

    /// <summary>
    /// The receive window a stream is topped up to as its body is consumed (within its
    /// <see cref="Http2ResponseBudget"/>, if it has one). Generous, so a response rarely waits on a
    /// round trip for credit; it bounds what one slow reader can make this side buffer.
    /// </summary>
    public int StreamWindow { get; init; } = 256 * 1024;

    /// <summary>The connection's receive window, shared by all its streams (credited as DATA arrives: the stream windows bound what is buffered).</summary>
    public int ConnectionWindow { get; init; } = 8 * 1024 * 1024;

    /// <summary>SETTINGS_MAX_HEADER_LIST_SIZE: a larger response head or trailers fails its stream.</summary>
    public int MaxHeaderListSize { get; init; } = 64 * 1024;

    /// <summary>How long the peer has to send its SETTINGS, and to acknowledge ours (RFC 9113 6.5.3).</summary>
    public TimeSpan SettingsTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a pool's dial may take, TCP connect, TLS handshake and the server's SETTINGS together.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A connection that has read nothing for this long is pinged.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A ping unanswered for this long means the peer is gone: the connection is dropped.</summary>
    public TimeSpan PingTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A connection without streams for this long is closed (GOAWAY, then FIN).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Connections a pool keeps to one endpoint; a new one is dialled only when all are full.</summary>
    public int MaxConnections { get; init; } = 4;

    /// <summary>Where response bodies are buffered until read.</summary>
    public MemoryPool<byte> Pool { get; init; } = MemoryPool<byte>.Shared;

    public TimeProvider Time { get; init; } = TimeProvider.System;
}
