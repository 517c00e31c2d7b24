using System.Buffers.Binary;

namespace Forwarder.Dns;

/// <summary>Record types the server knows by name (RFC 1035, 3596, 2782, 6891).</summary>
internal static class DnsType
{
    public const ushort A = 1;
    public const ushort Ns = 2;
    public const ushort Soa = 6;
    public const ushort Ptr = 12;
    public const ushort Aaaa = 28;
    public const ushort Srv = 33;
    public const ushort Opt = 41;
    public const ushort Any = 255;
}

internal static class DnsRcode
{
    public const int NoError = 0;
    public const int FormErr = 1;
    public const int ServFail = 2;
    public const int NxDomain = 3;
    public const int NotImp = 4;
    public const int Refused = 5;
}

/// <summary>The fixed 12-byte header: field offsets and flag bits.</summary>
internal static class DnsHeader
{
    public const int Size = 12;
    public const ushort ClassIn = 1;

    /// <summary>Without EDNS a UDP answer must fit 512 bytes (RFC 1035 4.2.1).</summary>
    public const int ClassicUdpSize = 512;

    /// <summary>The EDNS buffer size offered and honoured at most: the 2020 DNS flag day's, which avoids IP fragmentation.</summary>
    public const int EdnsUdpSize = 1232;

    public const int MaxMessage = 65535;

    public const ushort Qr = 0x8000;
    public const ushort Aa = 0x0400;
    public const ushort Tc = 0x0200;
    public const ushort Rd = 0x0100;
    public const ushort Ra = 0x0080;

    public static ushort Id(ReadOnlySpan<byte> m) => BinaryPrimitives.ReadUInt16BigEndian(m);

    public static ushort Flags(ReadOnlySpan<byte> m) => BinaryPrimitives.ReadUInt16BigEndian(m[2..]);

    public static int Opcode(ushort flags) => (flags >> 11) & 0xF;

    public static int Rcode(ReadOnlySpan<byte> m) => m[3] & 0xF;

    public static ushort Count(ReadOnlySpan<byte> m, int section) => BinaryPrimitives.ReadUInt16BigEndian(m[(4 + (2 * section))..]);

    public static void SetId(Span<byte> m, ushort id) => BinaryPrimitives.WriteUInt16BigEndian(m, id);

    public static void SetFlags(Span<byte> m, ushort flags) => BinaryPrimitives.WriteUInt16BigEndian(m[2..], flags);

    public static void SetCount(Span<byte> m, int section, int count) => BinaryPrimitives.WriteUInt16BigEndian(m[(4 + (2 * section))..], (ushort)count);
}
