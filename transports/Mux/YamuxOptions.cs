using System.Buffers;

namespace Forwarder.Transports.Mux;

/// <summary>How a yamux session behaves; the defaults are the spec's and hashicorp/yamux's.</summary>
public sealed record YamuxOptions
{
    /// <summary>The window every stream starts with on both sides, by the spec.</summary>
    public const int SpecInitialWindow = 256 * 1024;

    /// <summary>How much a stream may receive ahead of its reader; above 256 KiB it is granted to the peer at open.</summary>
    public int ReceiveWindow { get; init; } = SpecInitialWindow;

    /// <summary>The largest data frame this side sends.</summary>
    public int MaxFrameData { get; init; } = 64 * 1024;

    /// <summary>
    /// Where the streams' pipes take their buffers, in its largest blocks. Give the transport's
    /// pool: the shared array pool keeps too few buffers for a stream's megabyte in flight, and
    /// every miss is a new array the GC clears and collects (a fifth of a link's CPU under bulk).
    /// </summary>
    public MemoryPool<byte> Pool { get; init; } = MemoryPool<byte>.Shared;

    /// <summary>Streams open at once; a SYN beyond it is refused with RST.</summary>
    public int MaxStreams { get; init; } = 4096;

    /// <summary>Opened streams waiting for the application to accept them; a SYN beyond it is refused with RST.</summary>
    public int AcceptBacklog { get; init; } = 256;

    /// <summary>Between keep-alive pings; zero turns them off.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A ping unanswered for this long ends the session as dead.</summary>
    public TimeSpan PingTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long an ended session keeps sending what is queued (its go-away, data already framed)
    /// to a peer that is not reading it, before the connection is aborted and the rest dropped.
    /// </summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
