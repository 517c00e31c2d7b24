using System.Buffers;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// A header list kept as bytes: names and values packed into one buffer, found again by index.
/// The buffers are kept across <see cref="Clear"/>, so a list reused per request (the request
/// head a caller fills, a pooled stream's response head and trailers) allocates nothing once it
/// has grown to fit. The bytes are rented from the shared array pool, so a list grown past what
/// it keeps (a client's big headers, request after request) gives its buffer back rather than
/// leave it to the GC. It is the HPACK decoder's sink for response heads.
/// </summary>
internal sealed class Http2HeaderList : IHpackSink
{
    private const int InitialBytes = 256;
    private const int InitialFields = 16;

    /// <summary>The most a list keeps when reused (<see cref="Recycle"/>): a huge or HPACK-amplified list is not pinned in a pool.</summary>
    private const int RetainedBytes = 8 * 1024;

    private byte[] _bytes = [];
    private Field[] _fields = new Field[InitialFields];
    private int _used;

    public int Count { get; private set; }

    public ReadOnlySpan<byte> Name(int index) => Slice(_fields[index].NameStart, _fields[index].NameLength);

    public ReadOnlySpan<byte> Value(int index) => Slice(_fields[index].NameStart + _fields[index].NameLength, _fields[index].ValueLength);

    /// <summary>The index of the first field named <paramref name="name"/>, or -1.</summary>
    public int IndexOf(ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < Count; i++)
        {
            if (Name(i).SequenceEqual(name))
            {
                return i;
            }
        }

        return -1;
    }

    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var needed = _used + name.Length + value.Length;
        if (needed > _bytes.Length)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Max(InitialBytes, _bytes.Length * 2)));
            _bytes.AsSpan(0, _used).CopyTo(grown);
            Return();
            _bytes = grown;
        }

        if (Count == _fields.Length)
        {
            Array.Resize(ref _fields, _fields.Length * 2);
        }

        name.CopyTo(_bytes.AsSpan(_used));
        value.CopyTo(_bytes.AsSpan(_used + name.Length));
        _fields[Count++] = new Field(_used, name.Length, value.Length);
        _used = needed;
    }

    public void Clear()
    {
        Count = 0;
        _used = 0;
    }

    /// <summary>Cleared for a pooled owner's next use: buffers grown past <see cref="RetainedBytes"/> are dropped.</summary>
    public void Recycle()
    {
        Clear();
        if (_bytes.Length > RetainedBytes)
        {
            Return();
            _bytes = [];
        }

        if (_fields.Length * 8 > RetainedBytes)
        {
            _fields = new Field[InitialFields];
        }
    }

    private void Return()
    {
        if (_bytes.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_bytes);
        }
    }

    void IHpackSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Add(name, value);

    private ReadOnlySpan<byte> Slice(int start, int length) => _bytes.AsSpan(start, length);

    private readonly record struct Field(int NameStart, int NameLength, int ValueLength);
}
