using System.Buffers;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// A header list kept as bytes: names and values copied into one pooled buffer with an index of
/// where each lies, so decoding a request's headers or building a response's allocates nothing
/// once the buffers have grown to the connection's usual size. Cleared and reused per stream.
/// </summary>
internal sealed class Http2HeaderFields : IHpackSink
{
    /// <summary>
    /// The most bytes a list keeps when a pooled owner reuses it: a larger one (a huge or an
    /// HPACK-amplified header list, a few bytes on the wire) gives its buffer back rather than
    /// pin it in the pool for the connection's life.
    /// </summary>
    public const int RetainedBytes = 8 * 1024;

    private const int RetainedFields = 128;

    private byte[] _bytes = [];
    private Field[] _fields = new Field[16];
    private int _used;

    public int Count { get; private set; }

    /// <summary>The bytes the list holds on to.</summary>
    internal int Capacity => _bytes.Length;

    public ReadOnlySpan<byte> Name(int index) => _bytes.AsSpan(_fields[index].NameStart, _fields[index].NameLength);

    public ReadOnlySpan<byte> Value(int index) => _bytes.AsSpan(_fields[index].NameStart + _fields[index].NameLength, _fields[index].ValueLength);

    /// <summary>The value of the first field named <paramref name="name"/>; empty when there is none.</summary>
    public ReadOnlySpan<byte> Get(ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < Count; i++)
        {
            if (Name(i).SequenceEqual(name))
            {
                return Value(i);
            }
        }

        return default;
    }

    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var needed = _used + name.Length + value.Length;
        if (needed > _bytes.Length)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Max(256, _bytes.Length * 2)));
            _bytes.AsSpan(0, _used).CopyTo(grown);
            Return();
            _bytes = grown;
        }

        if (Count == _fields.Length)
        {
            Array.Resize(ref _fields, Count * 2);
        }

        name.CopyTo(_bytes.AsSpan(_used));
        value.CopyTo(_bytes.AsSpan(_used + name.Length));
        _fields[Count++] = new Field(_used, name.Length, value.Length);
        _used = needed;
    }

    void IHpackSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Add(name, value);

    public void Clear()
    {
        Count = 0;
        _used = 0;
    }

    /// <summary>Cleared for the owner's next use, keeping at most <see cref="RetainedBytes"/>.</summary>
    public void Recycle()
    {
        if (_bytes.Length > RetainedBytes)
        {
            Release();
        }
        else
        {
            Clear();
        }

        if (_fields.Length > RetainedFields)
        {
            _fields = new Field[16];
        }
    }

    /// <summary>Gives the bytes back to the pool (the fields stay usable: they grow again).</summary>
    public void Release()
    {
        Clear();
        Return();
        _bytes = [];
    }

    private void Return()
    {
        if (_bytes.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_bytes);
        }
    }

    private readonly record struct Field(int NameStart, int NameLength, int ValueLength);
}
