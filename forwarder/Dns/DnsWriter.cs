using System.Buffers.Binary;

namespace Forwarder.Dns;

/// <summary>
/// Writes a message into a fixed buffer with name compression. Every write reports whether it
/// fit; a record that does not fit is rolled back whole so the caller can set TC and stop.
/// </summary>
internal ref struct DnsWriter
{
    private const int MaxPointerTarget = 0x3FFF;

    private readonly Span<byte> _whole;
    private readonly Span<ushort> _names;
    private Span<byte> _buffer;
    private int _nameCount;

    /// <param name="names">Room for the offsets of names written, which later names may point to.</param>
    public DnsWriter(Span<byte> buffer, Span<ushort> names)
    {
        _whole = buffer;
        _buffer = buffer;
        _names = names;
    }

    /// <summary>Keeps the last <paramref name="bytes"/> of the buffer free (for an OPT record written last) until <see cref="Release"/>.</summary>
    public void Reserve(int bytes) => _buffer = _whole[..Math.Max(0, _whole.Length - bytes)];

    public void Release() => _buffer = _whole;

    public int Position { get; private set; }

    public readonly Span<byte> Written => _buffer[..Position];

    /// <summary>Where to roll back to if what follows does not fit.</summary>
    public readonly (int Position, int Names) Mark => (Position, _nameCount);

    public void Reset((int Position, int Names) mark) => (Position, _nameCount) = mark;

    public bool WriteHeader(ushort id, ushort flags, int rcode)
    {
        if (_buffer.Length < DnsHeader.Size)
        {
            return false;
        }

        _buffer[..DnsHeader.Size].Clear();
        DnsHeader.SetId(_buffer, id);
        DnsHeader.SetFlags(_buffer, (ushort)(flags | (rcode & 0xF)));
        Position = DnsHeader.Size;
        return true;
    }

    public readonly void SetCount(int section, int count) => DnsHeader.SetCount(_buffer, section, count);

    public readonly void AddFlags(ushort flags) => DnsHeader.SetFlags(_buffer, (ushort)(DnsHeader.Flags(_buffer) | flags));

    /// <summary>A question; <paramref name="name"/> is written as given (the client's case) and becomes a pointer target.</summary>
    public bool WriteQuestion(ReadOnlySpan<byte> name, ushort type, ushort @class)
        => WriteName(name, compress: true) && WriteUInt16(type) && WriteUInt16(@class);

    public bool WriteA(ReadOnlySpan<byte> owner, uint ttl, ReadOnlySpan<byte> address)
        => Record(owner, address.Length == 4 ? DnsType.A : DnsType.Aaaa, ttl, address, default);

    public bool WriteSrv(ReadOnlySpan<byte> owner, uint ttl, ushort port, ReadOnlySpan<byte> target)
    {
        Span<byte> fixedPart = stackalloc byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart, 0);
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart[2..], 100);
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart[4..], port);

        // RFC 2782: the target is not compressed.
        return Record(owner, DnsType.Srv, ttl, fixedPart, target);
    }

    /// <summary>The zone's SOA: primary ns.dns.ZONE, mailbox hostmaster.ZONE, negative TTL <paramref name="minimum"/>.</summary>
    public bool WriteSoa(ReadOnlySpan<byte> zone, ReadOnlySpan<byte> primary, ReadOnlySpan<byte> mailbox, uint ttl, uint serial, uint minimum)
    {
        var mark = Mark;
        if (!WriteName(zone, compress: true) || !WriteUInt16(DnsType.Soa) || !WriteUInt16(DnsHeader.ClassIn) || !WriteUInt32(ttl) || !WriteUInt16(0))
        {
            Reset(mark);
            return false;
        }

        var start = Position;
        if (!WriteName(primary, compress: true) || !WriteName(mailbox, compress: true)
            || !WriteUInt32(serial) || !WriteUInt32(7200) || !WriteUInt32(1800) || !WriteUInt32(86400) || !WriteUInt32(minimum))
        {
            Reset(mark);
            return false;
        }

        BinaryPrimitives.WriteUInt16BigEndian(_buffer[(start - 2)..], (ushort)(Position - start));
        return true;
    }

    /// <summary>An EDNS OPT pseudo-record offering <see cref="DnsHeader.EdnsUdpSize"/>.</summary>
    public bool WriteOpt()
    {
        if (_buffer.Length - Position < 11)
        {
            return false;
        }

        var span = _buffer.Slice(Position, 11);
        span.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(span[1..], DnsType.Opt);
        BinaryPrimitives.WriteUInt16BigEndian(span[3..], DnsHeader.EdnsUdpSize);
        Position += 11;
        return true;
    }

    public bool WriteBytes(scoped ReadOnlySpan<byte> bytes)
    {
        if (!bytes.TryCopyTo(_buffer[Position..]))
        {
            return false;
        }

        Position += bytes.Length;
        return true;
    }

    private bool Record(ReadOnlySpan<byte> owner, ushort type, uint ttl, scoped ReadOnlySpan<byte> data, scoped ReadOnlySpan<byte> dataName)
    {
        var mark = Mark;
        if (!WriteName(owner, compress: true) || !WriteUInt16(type) || !WriteUInt16(DnsHeader.ClassIn) || !WriteUInt32(ttl)
            || !WriteUInt16((ushort)(data.Length + dataName.Length)) || !WriteBytes(data) || (dataName.Length > 0 && !WriteName(dataName, compress: false)))
        {
            Reset(mark);
            return false;
        }

        return true;
    }

    /// <summary>Writes an uncompressed wire name, pointing at an earlier copy of its longest known suffix when allowed.</summary>
    private bool WriteName(scoped ReadOnlySpan<byte> name, bool compress)
    {
        var start = Position;
        for (var position = 0; ; position += 1 + name[position])
        {
            if (name[position] == 0)
            {
                return WriteByte(0);
            }

            var suffix = name[position..];
            if (compress && Find(suffix) is var target and >= 0)
            {
                return WriteUInt16((ushort)(0xC000 | target));
            }

            var labelStart = Position;
            if (!WriteBytes(name.Slice(position, 1 + name[position])))
            {
                Position = start;
                return false;
            }

            if (labelStart <= MaxPointerTarget && _nameCount < _names.Length)
            {
                _names[_nameCount++] = (ushort)labelStart;
            }
        }
    }

    /// <summary>The offset of an earlier written name equal to <paramref name="suffix"/> (ASCII case-insensitive); -1 for none.</summary>
    private readonly int Find(scoped ReadOnlySpan<byte> suffix)
    {
        Span<byte> candidate = stackalloc byte[DnsName.MaxLength];
        for (var i = 0; i < _nameCount; i++)
        {
            var offset = (int)_names[i];
            if (DnsName.TryRead(_buffer[..Position], ref offset, candidate, out var length)
                && length == suffix.Length
                && System.Text.Ascii.EqualsIgnoreCase(candidate[..length], suffix))
            {
                return _names[i];
            }
        }

        return -1;
    }

    private bool WriteByte(byte value)
    {
        if (Position >= _buffer.Length)
        {
            return false;
        }

        _buffer[Position++] = value;
        return true;
    }

    private bool WriteUInt16(ushort value)
    {
        if (!BinaryPrimitives.TryWriteUInt16BigEndian(_buffer[Position..], value))
        {
            return false;
        }

        Position += 2;
        return true;
    }

    private bool WriteUInt32(uint value)
    {
        if (!BinaryPrimitives.TryWriteUInt32BigEndian(_buffer[Position..], value))
        {
            return false;
        }

        Position += 4;
        return true;
    }
}
