using System.Buffers;

namespace Forwarder.L7.Http2;

/// <summary>The connection preface an HTTP/2 client with prior knowledge opens with (RFC 9113 3.4).</summary>
internal static class Http2Preface
{
    public const int Length = 24;

    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>True when the bytes start with the preface, false when they cannot, null when too few arrived to tell.</summary>
    public static bool? Check(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> start = stackalloc byte[Preface.Length];
        var length = (int)Math.Min(buffer.Length, Preface.Length);
        buffer.Slice(0, length).CopyTo(start);
        if (!Preface.StartsWith(start[..length]))
        {
            return false;
        }

        return length == Preface.Length ? true : null;
    }
}
