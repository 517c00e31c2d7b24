using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>
/// What request and response heads share: one contiguous copy of the head's bytes and the
/// fields as ranges of it, read as spans and reused from one message to the next.
/// </summary>
internal abstract class Http1Head : IHttp1FieldSink
{
    private readonly List<(Range Name, Range Value)> _headers = [];
    private byte[] _bytes = new byte[4096];
    private int _length;

    public ReadOnlySpan<byte> Bytes => _bytes.AsSpan(0, _length);

    public int HeaderCount => _headers.Count;

    /// <summary>The value of the first field named <paramref name="name"/> (ASCII case-insensitive), or empty.</summary>
    public ReadOnlySpan<byte> this[ReadOnlySpan<byte> name]
    {
        get
        {
            foreach (var (headerName, value) in _headers)
            {
                if (Ascii.EqualsIgnoreCase(Bytes[headerName], name))
                {
                    return Bytes[value];
                }
            }

            return default;
        }
    }

    public ReadOnlySpan<byte> HeaderName(int index) => Bytes[_headers[index].Name];

    public ReadOnlySpan<byte> HeaderValue(int index) => Bytes[_headers[index].Value];

    public void AddHeader(Range name, Range value) => _headers.Add((name, value));

    /// <summary>Forgets the previous message and returns room for <paramref name="length"/> bytes of the next head.</summary>
    protected Span<byte> ResetBytes(int length)
    {
        if (_bytes.Length < length)
        {
            _bytes = new byte[Math.Max(length, _bytes.Length * 2)];
        }

        _length = length;
        _headers.Clear();
        return _bytes.AsSpan(0, length);
    }
}
