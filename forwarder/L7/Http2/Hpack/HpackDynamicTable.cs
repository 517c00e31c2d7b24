namespace Forwarder.L7.Http2.Hpack;

/// <summary>
/// The HPACK dynamic table (RFC 7541 2.3.2, 4): newest entry at index 1, oldest evicted first,
/// the size of an entry its name and value lengths plus 32. Entries' bytes live in one array as
/// large as the greatest size the table may be set to, oldest first; inserts append, evictions
/// only move the start, and when the end is reached the live bytes move back to the front. The
/// 32 bytes each entry is charged but does not store guarantee the room, so nothing is
/// allocated after construction.
/// </summary>
internal sealed class HpackDynamicTable
{
    public const int EntryOverhead = 32;

    private readonly byte[] _bytes;
    private readonly Entry[] _entries;
    private int _oldest;
    private int _end;

    /// <param name="capacity">The greatest size the table may be given (the SETTINGS_HEADER_TABLE_SIZE this side allows).</param>
    public HpackDynamicTable(int capacity)
    {
        _bytes = new byte[capacity];
        _entries = new Entry[(capacity / EntryOverhead) + 1];
        MaxSize = capacity;
    }

    public int Capacity => _bytes.Length;

    public int MaxSize { get; private set; }

    public int Size { get; private set; }

    public int Count { get; private set; }

    /// <summary>The entry at 1-based <paramref name="index"/>, newest first.</summary>
    public ReadOnlySpan<byte> Name(int index)
    {
        var entry = At(index);
        return _bytes.AsSpan(entry.Offset, entry.NameLength);
    }

    public ReadOnlySpan<byte> Value(int index)
    {
        var entry = At(index);
        return _bytes.AsSpan(entry.Offset + entry.NameLength, entry.ValueLength);
    }

    /// <summary>The index of the entry with this name and value, or 0.</summary>
    public int Find(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        for (var index = 1; index <= Count; index++)
        {
            if (Name(index).SequenceEqual(name) && Value(index).SequenceEqual(value))
            {
                return index;
            }
        }

        return 0;
    }

    /// <summary>The newest index with this name, or 0.</summary>
    public int FindName(ReadOnlySpan<byte> name)
    {
        for (var index = 1; index <= Count; index++)
        {
            if (Name(index).SequenceEqual(name))
            {
                return index;
            }
        }

        return 0;
    }

    /// <summary>A dynamic table size update: evicts down to <paramref name="maxSize"/> (at most <see cref="Capacity"/>).</summary>
    public void Resize(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxSize, Capacity);
        MaxSize = maxSize;
        EvictTo(maxSize);
    }

    /// <summary>
    /// Adds an entry, evicting the oldest to make room; one larger than the table empties it
    /// (RFC 7541 4.4). Neither span may point into this table: eviction may overwrite it.
    /// </summary>
    public void Insert(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var size = name.Length + value.Length + EntryOverhead;
        if (size > MaxSize)
        {
            EvictTo(0);
            return;
        }

        EvictTo(MaxSize - size);
        var length = name.Length + value.Length;
        if (_end + length > _bytes.Length)
        {
            Compact();
        }

        name.CopyTo(_bytes.AsSpan(_end));
        value.CopyTo(_bytes.AsSpan(_end + name.Length));
        _entries[(_oldest + Count) % _entries.Length] = new Entry(_end, name.Length, value.Length);
        _end += length;
        Count++;
        Size += size;
    }

    public bool Overlaps(ReadOnlySpan<byte> span) => span.Overlaps(_bytes);

    private Entry At(int index)
    {
        if ((uint)(index - 1) >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index));
        }

        return _entries[(_oldest + Count - index) % _entries.Length];
    }

    private void EvictTo(int size)
    {
        while (Size > size)
        {
            var oldest = _entries[_oldest];
            Size -= oldest.NameLength + oldest.ValueLength + EntryOverhead;
            _oldest = (_oldest + 1) % _entries.Length;
            Count--;
        }

        if (Count == 0)
        {
            _end = 0;
        }
    }

    private void Compact()
    {
        var start = _entries[_oldest].Offset;
        _bytes.AsSpan(start, _end - start).CopyTo(_bytes);
        for (var i = 0; i < Count; i++)
        {
            ref var entry = ref _entries[(_oldest + i) % _entries.Length];
            entry = entry with { Offset = entry.Offset - start };
        }

        _end -= start;
    }

    private readonly record struct Entry(int Offset, int NameLength, int ValueLength);
}
