using System.Buffers;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>Writing header text the proxy composes (never client bytes, which are copied as they came).</summary>
internal static class AsciiOutput
{
    public static void WriteAscii(this IBufferWriter<byte> output, string value)
    {
        var span = output.GetSpan(value.Length);
        output.Advance(Encoding.ASCII.GetBytes(value, span));
    }
}
