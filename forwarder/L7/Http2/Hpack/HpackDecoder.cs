using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Hpack;

/// <summary>
/// One connection's HPACK decoder (RFC 7541): header blocks in, name/value spans out to a sink,
/// with the dynamic table kept in step with the peer's encoder. Malformed input is a connection
/// error of type COMPRESSION_ERROR (RFC 9113 4.3), since the table can no longer be trusted.
/// </summary>
/// <remarks>
/// Strings that are sent raw are handed out as slices of the block; Huffman-decoded ones, and
/// names taken from the dynamic table for a new entry, go through a scratch buffer that grows
/// (up to twice the header list limit) and is kept, so a steady connection allocates nothing.
/// </remarks>
internal sealed class HpackDecoder
{
    private const int InitialScratch = 1024;

    private readonly HpackDynamicTable _table;
    private readonly int _maxHeaderListSize;
    private byte[] _scratch;

    /// <param name="maxTableSize">This side's SETTINGS_HEADER_TABLE_SIZE: the most the peer may size the table to.</param>
    /// <param name="maxHeaderListSize">This side's SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2's measure).</param>
    public HpackDecoder(int maxTableSize, int maxHeaderListSize)
    {
        _table = new HpackDynamicTable(maxTableSize);
        _maxHeaderListSize = maxHeaderListSize;
        _scratch = new byte[(int)Math.Min(InitialScratch, ScratchLimit)];
    }

    public HpackDynamicTable Table => _table;

    /// <summary>A name and a value, each at most the whole list: the most one field may need.</summary>
    private long ScratchLimit => (2 * (long)_maxHeaderListSize) + 16;

    /// <summary>Decodes one whole header block (HEADERS plus any CONTINUATION payloads, joined).</summary>
    public HpackDecodeResult Decode<TSink>(ReadOnlySpan<byte> block, ref TSink sink)
        where TSink : IHpackSink, allows ref struct
    {
        var position = 0;
        long listSize = 0;
        var fieldSeen = false;
        while (position < block.Length)
        {
            var first = block[position];
            ReadOnlySpan<byte> name;
            ReadOnlySpan<byte> value;
            if ((first & 0x80) != 0)
            {
                var index = HpackInteger.Read(block, ref position, 7);
                name = EntryName(index);
                value = EntryValue(index);
            }
            else if ((first & 0xE0) == 0x20)
            {
                // RFC 7541 4.2: size updates come first in a block, and within this side's setting.
                if (fieldSeen)
                {
                    throw Error("dynamic table size update after a header field");
                }

                var size = HpackInteger.Read(block, ref position, 5);
                if (size > _table.Capacity)
                {
                    throw Error($"dynamic table size update to {size}, above the {_table.Capacity} allowed");
                }

                _table.Resize(size);
                continue;
            }
            else
            {
                var incremental = (first & 0xC0) == 0x40;
                var nameIndex = HpackInteger.Read(block, ref position, incremental ? 6 : 4);
                var used = 0;
                if (nameIndex == 0)
                {
                    name = ReadString(block, ref position, ref used);
                }
                else
                {
                    name = EntryName(nameIndex);
                    if (incremental && _table.Overlaps(name))
                    {
                        // Inserting may evict the entry the name comes from (RFC 7541 4.4): copy it out first.
                        name = CopyToScratch(name, ref used);
                    }
                }

                value = ReadString(block, ref position, ref used);
                if (incremental)
                {
                    _table.Insert(name, value);
                }
            }

            fieldSeen = true;
            listSize += name.Length + value.Length + HpackDynamicTable.EntryOverhead;
            if (listSize <= _maxHeaderListSize)
            {
                sink.OnHeader(name, value);
            }
        }

        return listSize <= _maxHeaderListSize ? HpackDecodeResult.Complete : HpackDecodeResult.HeaderListTooLarge;
    }

    private static Http2ConnectionException Error(string message) => new(Http2ErrorCode.CompressionError, "HPACK: " + message);

    private ReadOnlySpan<byte> EntryName(int index) => index switch
    {
        0 => throw Error("index 0"),
        <= HpackStaticTable.Count => HpackStaticTable.Name(index),
        _ when index - HpackStaticTable.Count <= _table.Count => _table.Name(index - HpackStaticTable.Count),
        _ => throw Error($"index {index} past the table"),
    };

    private ReadOnlySpan<byte> EntryValue(int index) =>
        index <= HpackStaticTable.Count ? HpackStaticTable.Value(index) : _table.Value(index - HpackStaticTable.Count);

    /// <summary>Reads a string literal (RFC 7541 5.2); <paramref name="used"/> is how much of the scratch buffer this field holds.</summary>
    private ReadOnlySpan<byte> ReadString(ReadOnlySpan<byte> block, scoped ref int position, scoped ref int used)
    {
        if (position >= block.Length)
        {
            throw Error("string missing");
        }

        var huffman = (block[position] & 0x80) != 0;
        var length = HpackInteger.Read(block, ref position, 7);
        if (length > block.Length - position)
        {
            throw Error("string longer than its block");
        }

        var raw = block.Slice(position, length);
        position += length;
        if (!huffman)
        {
            return raw;
        }

        while (true)
        {
            var written = HpackHuffman.Decode(raw, _scratch.AsSpan(used));
            if (written >= 0)
            {
                var decoded = _scratch.AsSpan(used, written);
                used += written;
                return decoded;
            }

            Grow(used);
        }
    }

    private ReadOnlySpan<byte> CopyToScratch(ReadOnlySpan<byte> source, scoped ref int used)
    {
        while (_scratch.Length - used < source.Length)
        {
            Grow(used);
        }

        source.CopyTo(_scratch.AsSpan(used));
        var copy = _scratch.AsSpan(used, source.Length);
        used += source.Length;
        return copy;
    }

    /// <summary>Doubles the scratch buffer, keeping the field's first <paramref name="used"/> bytes (its name).</summary>
    private void Grow(int used)
    {
        var limit = ScratchLimit;
        if (_scratch.Length >= limit)
        {
            throw Error("string longer than the header list limit");
        }

        var larger = new byte[(int)Math.Min(_scratch.Length * 2L, limit)];
        _scratch.AsSpan(0, used).CopyTo(larger);
        _scratch = larger;
    }
}
