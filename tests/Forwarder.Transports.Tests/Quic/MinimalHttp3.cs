using System.Text;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// Just enough HTTP/3 (RFC 9114) to drive ngtcp2's example server over a raw QUIC stream: one request
/// whose QPACK block uses the static table only, and a response read frame by frame.
/// </summary>
internal static class MinimalHttp3
{
    private const byte DataFrame = 0x00;
    private const byte HeadersFrame = 0x01;

    public static byte[] Headers(string method, string authority, string path)
    {
        var block = new List<byte> { 0x00, 0x00 }; // Required Insert Count 0, Base 0
        block.Add(method switch { "GET" => 0xC0 | 17, "POST" => 0xC0 | 20, _ => throw new ArgumentException(method) });
        block.Add(0xC0 | 23); // :scheme https
        AddLiteralWithStaticName(block, 0, authority); // :authority
        AddLiteralWithStaticName(block, 1, path); // :path
        return Frame(HeadersFrame, [.. block]);
    }

    /// <summary>A response HEADERS frame carrying only :status 200 (static table entry 25).</summary>
    public static byte[] ResponseHeaders() => Frame(HeadersFrame, [0x00, 0x00, 0xC0 | 25]);

    public static byte[] Data(ReadOnlySpan<byte> payload) => Frame(DataFrame, payload);

    /// <summary>Reads the response to its FIN and returns the DATA frames' bytes; asserts a :status 200 HEADERS frame came first.</summary>
    public static async Task<byte[]> ReadResponseBodyAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var raw = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            raw.Write(buffer, 0, n);
        }

        var bytes = raw.ToArray().AsSpan();
        var body = new MemoryStream();
        var sawHeaders = false;
        while (!bytes.IsEmpty)
        {
            var type = ReadVarint(ref bytes);
            var length = (int)ReadVarint(ref bytes);
            var payload = bytes[..length];
            bytes = bytes[length..];
            if (type == HeadersFrame && !sawHeaders)
            {
                // :status 200 is static table entry 25, sent as an indexed field line.
                Assert.Equal(0xC0 | 25, payload[2]);
                sawHeaders = true;
            }
            else if (type == DataFrame)
            {
                Assert.True(sawHeaders, "DATA before HEADERS");
                body.Write(payload);
            }
        }

        Assert.True(sawHeaders, "no HEADERS frame in the response");
        return body.ToArray();
    }

    private static void AddLiteralWithStaticName(List<byte> block, int staticIndex, string value)
    {
        block.Add((byte)(0x50 | staticIndex)); // 01 N=0 T=1, 4-bit name index
        var bytes = Encoding.ASCII.GetBytes(value);
        if (bytes.Length >= 127)
        {
            throw new ArgumentException("value too long for this encoder", nameof(value));
        }

        block.Add((byte)bytes.Length); // H=0, 7-bit length
        block.AddRange(bytes);
    }

    private static byte[] Frame(byte type, ReadOnlySpan<byte> payload)
    {
        var frame = new List<byte> { type };
        WriteVarint(frame, (ulong)payload.Length);
        frame.AddRange(payload);
        return [.. frame];
    }

    private static void WriteVarint(List<byte> output, ulong value)
    {
        if (value < 64)
        {
            output.Add((byte)value);
        }
        else if (value < 16384)
        {
            output.Add((byte)(0x40 | (value >> 8)));
            output.Add((byte)value);
        }
        else if (value < 1UL << 30)
        {
            output.Add((byte)(0x80 | (value >> 24)));
            output.Add((byte)(value >> 16));
            output.Add((byte)(value >> 8));
            output.Add((byte)value);
        }
        else
        {
            throw new ArgumentOutOfRangeException(nameof(value));
        }
    }

    private static ulong ReadVarint(ref Span<byte> bytes)
    {
        var length = 1 << (bytes[0] >> 6);
        ulong value = (ulong)(bytes[0] & 0x3F);
        for (var i = 1; i < length; i++)
        {
            value = (value << 8) | bytes[i];
        }

        bytes = bytes[length..];
        return value;
    }
}
