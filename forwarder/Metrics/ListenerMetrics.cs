namespace Forwarder.Metrics;

/// <summary>Why accept() failed on a listener.</summary>
internal enum AcceptFailure
{
    /// <summary>Out of file descriptors, the process's (EMFILE) or the system's (ENFILE).</summary>
    FdLimit,

    /// <summary>Out of socket buffers or kernel memory (ENOBUFS, ENOMEM).</summary>
    NoBuffers,

    Other,
}

/// <summary>Counters for one listener, kept across reloads for as long as the name exists.</summary>
internal sealed class ListenerMetrics(string name)
{
    private readonly long[] _acceptErrors = new long[Enum.GetValues<AcceptFailure>().Length];
    private readonly long[] _http2GoAways = new long[Enum.GetValues<Http2GoAwayReason>().Length];
    private long _active;
    private long _total;
    private long _rejected;
    private long _bytesReceived;
    private long _bytesSent;
    private long[]? _refused;
    private long _tlsHttp2;
    private long _tlsHttp11;
    private long _tlsFailed;
    private long _http2ResponseBuffered;
    private long _http2ResponseBudgetHeld;
    private long _http2ResponseBudgetExhausted;
    private bool _http2ResponsesBuffered;

    public string Name { get; } = name;

    public long Active => Volatile.Read(ref _active);

    public long Total => Volatile.Read(ref _total);

    public long Rejected => Volatile.Read(ref _rejected);

    /// <summary>Bytes read from clients.</summary>
    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>Bytes written to clients.</summary>
    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>TLS handshakes that chose h2 by ALPN.</summary>
    public long TlsHttp2 => Volatile.Read(ref _tlsHttp2);

    /// <summary>TLS handshakes that chose http/1.1, or no protocol, by ALPN.</summary>
    public long TlsHttp11 => Volatile.Read(ref _tlsHttp11);

    /// <summary>TLS handshakes that failed or timed out.</summary>
    public long TlsFailed => Volatile.Read(ref _tlsFailed);

    public void ConnectionOpened()
    {
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _total);
    }

    public void ConnectionClosed() => Interlocked.Decrement(ref _active);

    public void ConnectionRejected() => Interlocked.Increment(ref _rejected);

    public long AcceptErrors(AcceptFailure failure) => Volatile.Read(ref _acceptErrors[(int)failure]);

    public void AcceptFailed(AcceptFailure failure) => Interlocked.Increment(ref _acceptErrors[(int)failure]);

    public void AddReceived(long bytes) => Interlocked.Add(ref _bytesReceived, bytes);

    public void AddSent(long bytes) => Interlocked.Add(ref _bytesSent, bytes);

    public void TlsHandshakeCompleted(bool http2) => Interlocked.Increment(ref http2 ? ref _tlsHttp2 : ref _tlsHttp11);

    public void TlsHandshakeFailed() => Interlocked.Increment(ref _tlsFailed);

    /// <summary>HTTP/2 client connections the proxy closed with a GOAWAY of its own, for <paramref name="reason"/>.</summary>
    public long Http2GoAways(Http2GoAwayReason reason) => Volatile.Read(ref _http2GoAways[(int)reason]);

    public void Http2GoAway(Http2GoAwayReason reason) => Interlocked.Increment(ref _http2GoAways[(int)reason]);

    /// <summary>Response bytes the native HTTP/2 front holds from upstreams that its clients have not taken yet.</summary>
    public long Http2ResponseBuffered => Volatile.Read(ref _http2ResponseBuffered);

    /// <summary>Credit the native HTTP/2 front's response budgets have granted upstream streams past their opening windows and not had back yet.</summary>
    public long Http2ResponseBudgetHeld => Volatile.Read(ref _http2ResponseBudgetHeld);

    /// <summary>Times an upstream stream's window top-up was held back because its client connection's response buffer was full.</summary>
    public long Http2ResponseBudgetExhaustions => Volatile.Read(ref _http2ResponseBudgetExhausted);

    /// <summary>The native HTTP/2 front has buffered responses on this listener (its gauge is exported from then on).</summary>
    public bool Http2ResponsesBuffered => Volatile.Read(ref _http2ResponsesBuffered);

    public void AddHttp2ResponseBuffered(long delta)
    {
        Interlocked.Add(ref _http2ResponseBuffered, delta);
        if (!_http2ResponsesBuffered)
        {
            Volatile.Write(ref _http2ResponsesBuffered, true);
        }
    }

    /// <summary>Under a response budget's lock: credit it granted (positive) or had back (negative).</summary>
    public void AddHttp2ResponseBudgetHeld(long delta) => Interlocked.Add(ref _http2ResponseBudgetHeld, delta);

    public void Http2ResponseBudgetExhausted() => Interlocked.Increment(ref _http2ResponseBudgetExhausted);

    /// <summary>An http request the proxy answered by itself with <paramref name="status"/> (400, 404, 408, 413, 503, ...).</summary>
    public void HttpRefused(int status)
    {
        if (status is >= 100 and < 600)
        {
            var refused = Volatile.Read(ref _refused) ?? Interlocked.CompareExchange(ref _refused, new long[600], null) ?? _refused!;
            Interlocked.Increment(ref refused[status]);
        }
    }

    /// <summary>Requests the proxy answered by itself, by status; empty for a listener that never had to.</summary>
    public IEnumerable<(int Status, long Count)> Refused()
    {
        var refused = Volatile.Read(ref _refused);
        for (var status = 0; refused is not null && status < refused.Length; status++)
        {
            if (Volatile.Read(ref refused[status]) is > 0 and var count)
            {
                yield return (status, count);
            }
        }
    }
}
