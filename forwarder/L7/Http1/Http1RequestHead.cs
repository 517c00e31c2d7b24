using Forwarder.L7.Routing;

namespace Forwarder.L7.Http1;

/// <summary>The HTTP version of a request line.</summary>
internal enum Http1Version
{
    Http10,
    Http11,
}

/// <summary>
/// A parsed request head, kept as one contiguous copy of its bytes plus offsets: fields are read
/// as spans, nothing is turned into strings unless someone asks, and the instance is reused for
/// every request on a connection.
/// </summary>
internal sealed class Http1RequestHead : Http1Head
{
    private Range _method;
    private Range _target;
    private Range _path;
    private Range _query;
    private Range _host;

    public ReadOnlySpan<byte> Method => Bytes[_method];

    /// <summary>The request target: origin-form, absolute-form or *, as sent but for a path <see cref="NormalizePath"/> rewrote.</summary>
    public ReadOnlySpan<byte> Target => Bytes[_target];

    /// <summary>The path, starting with '/' (or "*" for OPTIONS *).</summary>
    public ReadOnlySpan<byte> Path => Bytes[_path];

    /// <summary>The query without its '?', empty when there is none.</summary>
    public ReadOnlySpan<byte> Query => Bytes[_query];

    /// <summary>The authority: the Host header, or the host of an absolute-form target.</summary>
    public ReadOnlySpan<byte> Host => Bytes[_host];

    public Http1Version Version { get; private set; }

    /// <summary>The body's length when Content-Length framed it; null for chunked bodies and for none.</summary>
    public long? ContentLength { get; private set; }

    /// <summary>The body is chunked (Transfer-Encoding ends in chunked).</summary>
    public bool Chunked { get; private set; }

    /// <summary>The client wants the connection kept open after this exchange.</summary>
    public bool KeepAlive { get; private set; }

    /// <summary>The client sent Expect: 100-continue and waits for it before the body.</summary>
    public bool ExpectContinue { get; private set; }

    /// <summary>The request asks to switch to WebSocket (Connection: upgrade, Upgrade: websocket); other upgrades are never set here.</summary>
    public bool Upgrade { get; private set; }

    public bool HasBody => Chunked || ContentLength > 0;

    /// <summary>Makes room for and copies the head's bytes; the parser then fills in the rest.</summary>
    internal Span<byte> Reset(int length)
    {
        var bytes = ResetBytes(length);
        _method = _target = _path = _query = _host = default;
        ContentLength = null;
        Chunked = KeepAlive = ExpectContinue = Upgrade = false;
        Version = Http1Version.Http11;
        return bytes;
    }

    /// <summary>
    /// Normalizes the path in place, before the request is routed: what is routed is what is
    /// sent. The target shrinks with it (the query moves up behind the new path); the request
    /// line's bytes after it are stale, but nothing reads them again. True when it changed.
    /// </summary>
    public bool NormalizePath(PathNormalization mode)
    {
        var bytes = WritableBytes;
        var (pathStart, pathLength) = _path.GetOffsetAndLength(bytes.Length);
        var path = bytes.Slice(pathStart, pathLength);
        if (!PathNormalizer.TryNormalize(path, path, mode, out var written))
        {
            return false;
        }

        var pathEnd = pathStart + pathLength;
        var targetEnd = _target.End.GetOffset(bytes.Length);
        var shift = pathLength - written;
        bytes[pathEnd..targetEnd].CopyTo(bytes[(pathStart + written)..]);
        _path = new Range(pathStart, pathStart + written);
        _target = new Range(_target.Start, targetEnd - shift);
        var (queryStart, queryLength) = _query.GetOffsetAndLength(bytes.Length);
        _query = new Range(queryStart - shift, queryStart - shift + queryLength);
        return true;
    }

    /// <summary>Forwards the request as a plain one: its route does not tunnel WebSockets.</summary>
    public void DropUpgrade() => Upgrade = false;

    internal void SetRequestLine(Range method, Range target, Range path, Range query, Http1Version version)
        => (_method, _target, _path, _query, Version) = (method, target, path, query, version);

    internal void SetHost(Range host) => _host = host;

    internal void SetFraming(long? contentLength, bool chunked) => (ContentLength, Chunked) = (contentLength, chunked);

    internal void SetConnection(bool keepAlive, bool upgrade, bool expectContinue) => (KeepAlive, Upgrade, ExpectContinue) = (keepAlive, upgrade, expectContinue);
}
