namespace Forwarder.Transports.Tcp;

/// <summary>Socket and buffering settings shared by the TCP listener and dialer.</summary>
public sealed record TcpTransportOptions
{
    /// <summary>Disable Nagle's algorithm so small writes leave at once.</summary>
    public bool NoDelay { get; init; } = true;

    /// <summary>SO_RCVBUF in bytes; null keeps the kernel's autotuned default.</summary>
    public int? ReceiveBufferSize { get; init; }

    /// <summary>SO_SNDBUF in bytes; null keeps the kernel's autotuned default.</summary>
    public int? SendBufferSize { get; init; }

    /// <summary>Bytes a connection may buffer in each direction before reads pause (backpressure).</summary>
    public long MaxBufferedBytes { get; init; } = 1024 * 1024;

    /// <summary>Size of the pooled blocks sockets receive into.</summary>
    public int BlockSize { get; init; } = 64 * 1024;

    /// <summary>
    /// Wait for data with a zero-byte receive before renting a buffer, so idle connections hold
    /// no buffer memory.
    /// </summary>
    public bool WaitForDataBeforeAllocatingBuffer { get; init; } = true;

    /// <summary>
    /// SO_MARK set on dialled sockets (needs CAP_NET_ADMIN); null sets none. Interception's
    /// iptables rules let marked packets pass, so the proxy's own connections are not caught.
    /// </summary>
    public int? Mark { get; init; }

    /// <summary>Listen backlog.</summary>
    public int Backlog { get; init; } = 4096;
}
