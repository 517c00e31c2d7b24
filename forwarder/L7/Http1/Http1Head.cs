using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>
/// What request and response heads share: one contiguous copy of the head's bytes and the
/// fields as ranges of it, each with its kind, read as spans and reused from one message to the next.
/// </summary>
internal abstract class Http1Head
{
    private const int DefaultBytes = 4096;

    private readonly List<(Range Name, Range Value, Http1FieldKind Kind)> _headers = [];
    private byte[] _bytes = new byte[DefaultBytes];
    private int _length;

    public ReadOnlySpan<byte> Bytes => _bytes.AsSpan(0, _length);

    /// <summary>The head's bytes, for the one rewrite a request head gets in place (its path normalized).</summary>
    protected Span<byte> WritableBytes => _bytes.AsSpan(0, _length);

    public int HeaderCount => _headers.Count;

    internal int Capacity => _bytes.Length;

    /// <summary>
    /// A Connection field names an option other than keep-alive and upgrade: a field of that name
    /// is hop-by-hop too. Nearly always false, which spares the writers a look at every field.
    /// </summary>
    public bool ConnectionNamesFields { get; private set; }

    /// <summary>The value of the first field named <paramref name="name"/> (ASCII case-insensitive), or empty.</summary>
    public ReadOnlySpan<byte> this[ReadOnlySpan<byte> name]
    {
        get
        {
            foreach (var (headerName, value, _) in _headers)
            {
                if (Ascii.EqualsIgnoreCase(Bytes[headerName], name))
                {
                    return Bytes[value];
                }
            }

            return default;
        }
    }

    /// <summary>The value of the first field of <paramref name="kind"/>, or empty.</summary>
    public ReadOnlySpan<byte> First(Http1FieldKind kind)
    {
        foreach (var (_, value, headerKind) in _headers)
        {
            if (headerKind == kind)
            {
                return Bytes[value];
            }
        }

        return default;
    }

    public ReadOnlySpan<byte> HeaderName(int index) => Bytes[_headers[index].Name];

    public ReadOnlySpan<byte> HeaderValue(int index) => Bytes[_headers[index].Value];

    public Http1FieldKind HeaderKind(int index) => _headers[index].Kind;

    /// <summary>
    /// Whether a Connection field names the field at <paramref name="index"/>. Only needed when
    /// <see cref="ConnectionNamesFields"/>; the fields the proxy handles itself are never asked about.
    /// </summary>
    public bool IsNamedByConnection(int index)
    {
        var name = HeaderName(index);
        foreach (var (_, value, kind) in _headers)
        {
            if (kind != Http1FieldKind.Connection)
            {
                continue;
            }

            foreach (var token in new Http1Fields.TokenList(Bytes[value]))
            {
                if (Ascii.EqualsIgnoreCase(token, name))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>
    /// Writes the values of every field of <paramref name="kind"/>, in order, each followed by
    /// ", ": a list field sent as several lines is one list (RFC 9110 5.3), and a proxy that
    /// appends to it must keep all of it, not the last line only.
    /// </summary>
    public void WriteListItems(ref HeadOutput output, Http1FieldKind kind)
    {
        foreach (var (_, value, headerKind) in _headers)
        {
            if (headerKind == kind && !Bytes[value].IsEmpty)
            {
                output.Write(Bytes[value]);
                output.Write(", "u8);
            }
        }
    }

    public void AddHeader(Range name, Range value, Http1FieldKind kind) => _headers.Add((name, value, kind));

    internal void SetConnectionNamesFields(bool value) => ConnectionNamesFields = value;

    /// <summary>
    /// For a head kept between uses (pooled): a buffer grown past <paramref name="retainedBytes"/>
    /// by one huge head is dropped, not pinned. The head is empty after it.
    /// </summary>
    public void Trim(int retainedBytes)
    {
        _length = 0;
        _headers.Clear();
        ConnectionNamesFields = false;
        if (_bytes.Length > retainedBytes)
        {
            _bytes = new byte[DefaultBytes];
        }
    }

    /// <summary>Forgets the previous message and returns room for <paramref name="length"/> bytes of the next head.</summary>
    protected Span<byte> ResetBytes(int length)
    {
        if (_bytes.Length < length)
        {
            _bytes = new byte[Math.Max(length, _bytes.Length * 2)];
        }

        _length = length;
        _headers.Clear();
        ConnectionNamesFields = false;
        return _bytes.AsSpan(0, length);
    }
}
