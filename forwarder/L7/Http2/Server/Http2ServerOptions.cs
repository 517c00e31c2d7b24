namespace Forwarder.L7.Http2.Server;

/// <summary>The limits and settings of one HTTP/2 server connection; what it announces in its SETTINGS.</summary>
internal sealed record Http2ServerOptions
{
    public int MaxConcurrentStreams { get; init; } = 100;

    /// <summary>Each stream's receive window: the most request body buffered per stream (at least 65535).</summary>
    public int InitialStreamWindowSize { get; init; } = 256 * 1024;

    /// <summary>The connection's receive window, at least 65535: the most request body buffered per connection (credited back as handlers consume it).</summary>
    public int ConnectionWindowSize { get; init; } = 1024 * 1024;

    public int MaxFrameSize { get; init; } = 16_384;

    /// <summary>SETTINGS_MAX_HEADER_LIST_SIZE: a request over it is answered 431.</summary>
    public int MaxHeaderListSize { get; init; } = 32 * 1024;

    public int HeaderTableSize { get; init; } = 4096;

    /// <summary>The most a header block may take on the wire, frame headers included (a CONTINUATION flood ends here); raised to fit <see cref="MaxHeaderListSize"/> and a frame.</summary>
    public int MaxHeaderBlockSize { get; init; } = 64 * 1024;

    /// <summary>Response body buffered per stream before the handler's writes wait.</summary>
    public int ResponseBufferSize { get; init; } = 64 * 1024;

    /// <summary>Once the connection is idle, pooled streams (and their header buffers) no burst needed for this long are dropped (Kestrel's stream pool expiry).</summary>
    public TimeSpan StreamPoolExpiry { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>From the preface, and from each HEADERS, until its header block is whole.</summary>
    public TimeSpan HeaderTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>With no stream open, the connection closes after this.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(60);

    public TimeSpan SettingsAckTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// What handlers write outside the reader's batch is flushed from the thread pool, once for
    /// all written until then, rather than at once on the handler's thread: for handlers that
    /// answer from another connection's reader (a proxy), which completes many streams per read.
    /// </summary>
    public bool CoalesceHandlerWrites { get; init; }
}
