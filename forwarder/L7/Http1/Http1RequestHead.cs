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
internal sealed class Http1RequestHead : IHttp1FieldSink
{
    private readonly List<(Range Name, Range Value)> _headers = [];
    private byte[] _bytes = new byte[4096];
    private int _length;
    private Range _method;
    private Range _target;
    private Range _path;
    private Range _query;
    private Range _host;

    public ReadOnlySpan<byte> Bytes => _bytes.AsSpan(0, _length);

    public ReadOnlySpan<byte> Method => Bytes[_method];

    /// <summary>The request target as sent: origin-form, absolute-form or *.</summary>
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

    /// <summary>The request asks to switch protocols (Connection: upgrade with an Upgrade header).</summary>
    public bool Upgrade { get; private set; }

    public bool HasBody => Chunked || ContentLength > 0;

    public int HeaderCount => _headers.Count;

    public ReadOnlySpan<byte> HeaderName(int index) => Bytes[_headers[index].Name];

    public ReadOnlySpan<byte> HeaderValue(int index) => Bytes[_headers[index].Value];

    /// <summary>The value of the first header named <paramref name="name"/> (ASCII case-insensitive), or empty.</summary>
    public ReadOnlySpan<byte> this[ReadOnlySpan<byte> name]
    {
        get
        {
            foreach (var (headerName, value) in _headers)
            {
                if (System.Text.Ascii.EqualsIgnoreCase(Bytes[headerName], name))
                {
                    return Bytes[value];
                }
            }

            return default;
        }
    }

    /// <summary>Makes room for and copies the head's bytes; the parser then fills in the rest.</summary>
    internal Span<byte> Reset(int length)
    {
        if (_bytes.Length < length)
        {
            _bytes = new byte[Math.Max(length, _bytes.Length * 2)];
        }

        _length = length;
        _headers.Clear();
        _method = _target = _path = _query = _host = default;
        ContentLength = null;
        Chunked = KeepAlive = ExpectContinue = Upgrade = false;
        Version = Http1Version.Http11;
        return _bytes.AsSpan(0, length);
    }

    internal void SetRequestLine(Range method, Range target, Range path, Range query, Http1Version version)
        => (_method, _target, _path, _query, Version) = (method, target, path, query, version);

    public void AddHeader(Range name, Range value) => _headers.Add((name, value));

    internal void SetHost(Range host) => _host = host;

    internal void SetFraming(long? contentLength, bool chunked) => (ContentLength, Chunked) = (contentLength, chunked);

    internal void SetConnection(bool keepAlive, bool upgrade, bool expectContinue) => (KeepAlive, Upgrade, ExpectContinue) = (keepAlive, upgrade, expectContinue);
}
