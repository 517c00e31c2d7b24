namespace Forwarder.L7.Http1;

/// <summary>How a response's body is delimited (RFC 9112 6.3).</summary>
internal enum Http1BodyFraming
{
    /// <summary>No body: 1xx, 204, 304, or a response to HEAD.</summary>
    None,

    /// <summary>Exactly Content-Length bytes.</summary>
    Length,

    /// <summary>Chunked; read with <see cref="ChunkedBodyReader"/>.</summary>
    Chunked,

    /// <summary>Everything until the upstream closes the connection, which then cannot be reused.</summary>
    UntilClose,
}

/// <summary>A parsed response head from an upstream, reused for every response on a connection.</summary>
internal sealed class Http1ResponseHead : Http1Head
{
    private Range _reason;

    public Http1Version Version { get; private set; }

    public int Status { get; private set; }

    public ReadOnlySpan<byte> Reason => Bytes[_reason];

    public Http1BodyFraming Framing { get; private set; }

    /// <summary>The body's length when <see cref="Framing"/> is <see cref="Http1BodyFraming.Length"/>.</summary>
    public long ContentLength { get; private set; }

    /// <summary>The upstream connection may carry another request after this response.</summary>
    public bool KeepAlive { get; private set; }

    /// <summary>A 1xx other than 101: forward it, then read the final response.</summary>
    public bool IsInterim => Status is >= 100 and < 200 && Status != 101;

    internal Span<byte> Reset(int length)
    {
        var bytes = ResetBytes(length);
        _reason = default;
        Status = 0;
        ContentLength = 0;
        Framing = Http1BodyFraming.None;
        KeepAlive = false;
        return bytes;
    }

    internal void SetStatusLine(Http1Version version, int status, Range reason) => (Version, Status, _reason) = (version, status, reason);

    internal void SetFraming(Http1BodyFraming framing, long contentLength, bool keepAlive) => (Framing, ContentLength, KeepAlive) = (framing, contentLength, keepAlive);
}
