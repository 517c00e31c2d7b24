using System.Buffers.Binary;

namespace Forwarder.Dns;

internal enum DnsQueryParse
{
    Ok,

    /// <summary>Not worth an answer: shorter than a header, or a response (answering those invites loops).</summary>
    Drop,

    /// <summary>A header but a malformed or unsupported question section: FORMERR.</summary>
    FormErr,

    /// <summary>An opcode other than QUERY: NOTIMP.</summary>
    NotImp,
}

/// <summary>A parsed query: its one question and whether (and with what buffer size) it used EDNS.</summary>
internal readonly struct DnsQuery
{
    public ushort Id { get; init; }

    public ushort Flags { get; init; }

    /// <summary>The question's name length in wire form; its bytes, as the client sent them, start at offset 12.</summary>
    public int NameLength { get; init; }

    public ushort Type { get; init; }

    public ushort Class { get; init; }

    public bool Edns { get; init; }

    /// <summary>How large a UDP answer the client takes: 512 without EDNS, else its offer within [512, 1232].</summary>
    public int UdpLimit { get; init; }

    public bool RecursionDesired => (Flags & DnsHeader.Rd) != 0;

    /// <param name="name">Receives the question name, lower-cased, at least <see cref="DnsName.MaxLength"/> bytes.</param>
    public static DnsQueryParse TryParse(ReadOnlySpan<byte> message, Span<byte> name, out DnsQuery query)
    {
        query = default;
        if (message.Length < DnsHeader.Size || (DnsHeader.Flags(message) & DnsHeader.Qr) != 0)
        {
            return DnsQueryParse.Drop;
        }

        var flags = DnsHeader.Flags(message);
        query = new DnsQuery { Id = DnsHeader.Id(message), Flags = flags };
        if (DnsHeader.Opcode(flags) != 0)
        {
            return DnsQueryParse.NotImp;
        }

        if (DnsHeader.Count(message, 0) != 1 || DnsHeader.Count(message, 1) != 0 || DnsHeader.Count(message, 2) != 0)
        {
            return DnsQueryParse.FormErr;
        }

        var offset = DnsHeader.Size;
        // The name is echoed as sent, so it must be uncompressed (nothing precedes it to point to anyway).
        if (!DnsName.TryRead(message, ref offset, name, out var nameLength)
            || offset != DnsHeader.Size + nameLength || offset + 4 > message.Length)
        {
            return DnsQueryParse.FormErr;
        }

        var type = BinaryPrimitives.ReadUInt16BigEndian(message[offset..]);
        var @class = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 2)..]);
        offset += 4;
        var edns = false;
        var udpLimit = DnsHeader.ClassicUdpSize;
        for (var i = DnsHeader.Count(message, 3); i > 0; i--)
        {
            if (!DnsRecords.TrySkip(message, ref offset, out var rrType, out var rrClass, out _))
            {
                return DnsQueryParse.FormErr;
            }

            if (rrType == DnsType.Opt)
            {
                // RFC 6891 6.1.1: more than one OPT is a format error.
                if (edns)
                {
                    return DnsQueryParse.FormErr;
                }

                edns = true;
                udpLimit = Math.Clamp((int)rrClass, DnsHeader.ClassicUdpSize, DnsHeader.EdnsUdpSize);
            }
        }

        if (offset != message.Length || type is 0 or DnsType.Opt)
        {
            return DnsQueryParse.FormErr;
        }

        query = query with { NameLength = nameLength, Type = type, Class = @class, Edns = edns, UdpLimit = udpLimit };
        return DnsQueryParse.Ok;
    }
}

/// <summary>Walking resource records: skip one, reading its type, class and where its TTL sits.</summary>
internal static class DnsRecords
{
    /// <param name="ttlOffset">Where the record's 32-bit TTL is.</param>
    public static bool TrySkip(ReadOnlySpan<byte> message, ref int offset, out ushort type, out ushort @class, out int ttlOffset)
    {
        type = 0;
        @class = 0;
        ttlOffset = 0;
        if (!DnsName.TrySkip(message, ref offset) || offset + 10 > message.Length)
        {
            return false;
        }

        type = BinaryPrimitives.ReadUInt16BigEndian(message[offset..]);
        @class = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 2)..]);
        ttlOffset = offset + 4;
        var dataLength = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 8)..]);
        offset += 10 + dataLength;
        return offset <= message.Length;
    }
}
