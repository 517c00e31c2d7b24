using System.Buffers;

namespace Forwarder.L7.Http2.Hpack;

/// <summary>
/// One connection's HPACK encoder (RFC 7541): a field in the static table (or, with a dynamic
/// table, in that) goes as an index, any other as a literal whose name is indexed when a table
/// has it; strings are Huffman-encoded when that is no longer (as RFC 7541 Appendix C does), if enabled. The dynamic table is
/// off unless given a size, and then used only for fields encoded with
/// <see cref="HpackIndexing.Incremental"/>.
/// </summary>
internal sealed class HpackEncoder
{
    private readonly HpackDynamicTable? _table;
    private readonly bool _huffman;
    private int _smallestPendingSize = -1;

    /// <param name="maxTableSize">The dynamic table's size (capped by what the peer allows, <see cref="SetPeerMaxTableSize"/>); 0 for none.</param>
    public HpackEncoder(int maxTableSize = 0, bool huffman = true)
    {
        _table = maxTableSize > 0 ? new HpackDynamicTable(maxTableSize) : null;
        _huffman = huffman;
    }

    /// <summary>
    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the table shrinks to fit it (never grows past its
    /// own size), and the next block starts with the size update that tells the peer (RFC 7541 4.2).
    /// </summary>
    public void SetPeerMaxTableSize(int peerMax)
    {
        if (_table is null)
        {
            return;
        }

        var size = Math.Min(peerMax, _table.Capacity);
        if (size == _table.MaxSize)
        {
            return;
        }

        _smallestPendingSize = _smallestPendingSize < 0 ? size : Math.Min(_smallestPendingSize, size);
        _table.Resize(size);
    }

    /// <summary>Starts a header block: writes the size updates owed since the last one.</summary>
    public void BeginBlock(IBufferWriter<byte> output)
    {
        if (_smallestPendingSize < 0 || _table is null)
        {
            return;
        }

        // The smallest size passed through first, so the peer evicts what this side evicted.
        WriteSizeUpdate(output, _smallestPendingSize);
        if (_table.MaxSize != _smallestPendingSize)
        {
            WriteSizeUpdate(output, _table.MaxSize);
        }

        _smallestPendingSize = -1;
    }

    public void Encode(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, IBufferWriter<byte> output, HpackIndexing indexing = HpackIndexing.WithoutIndexing)
    {
        var index = HpackStaticTable.Find(name, value);
        if (index == 0 && _table?.Find(name, value) is > 0 and var dynamicIndex)
        {
            index = HpackStaticTable.Count + dynamicIndex;
        }

        if (index > 0)
        {
            var span = output.GetSpan(8);
            output.Advance(HpackInteger.Write(span, index, 7, 0x80));
            return;
        }

        var nameIndex = HpackStaticTable.FindName(name);
        if (nameIndex == 0 && _table?.FindName(name) is > 0 and var dynamicName)
        {
            nameIndex = HpackStaticTable.Count + dynamicName;
        }

        var incremental = indexing == HpackIndexing.Incremental && _table is not null;
        var prefix = incremental ? 6 : 4;
        var flags = indexing switch
        {
            _ when incremental => (byte)0x40,
            HpackIndexing.NeverIndexed => (byte)0x10,
            _ => (byte)0x00,
        };

        var head = output.GetSpan(8);
        output.Advance(HpackInteger.Write(head, nameIndex, prefix, flags));
        if (nameIndex == 0)
        {
            WriteString(output, name);
        }

        WriteString(output, value);
        if (incremental)
        {
            _table!.Insert(name, value);
        }
    }

    private static void WriteSizeUpdate(IBufferWriter<byte> output, int size)
    {
        var span = output.GetSpan(8);
        output.Advance(HpackInteger.Write(span, size, 5, 0x20));
    }

    private void WriteString(IBufferWriter<byte> output, ReadOnlySpan<byte> value)
    {
        var huffmanLength = _huffman ? HpackHuffman.EncodedLength(value) : int.MaxValue;
        if (huffmanLength <= value.Length)
        {
            var span = output.GetSpan(huffmanLength + 8);
            var written = HpackInteger.Write(span, huffmanLength, 7, 0x80);
            written += HpackHuffman.Encode(value, span[written..]);
            output.Advance(written);
        }
        else
        {
            var span = output.GetSpan(value.Length + 8);
            var written = HpackInteger.Write(span, value.Length, 7, 0);
            value.CopyTo(span[written..]);
            output.Advance(written + value.Length);
        }
    }
}
