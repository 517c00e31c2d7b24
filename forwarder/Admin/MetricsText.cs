using System.Buffers;
using System.Globalization;
using System.Text;

namespace Forwarder.Admin;

/// <summary>
/// Prometheus text written as UTF-8 straight into a buffer writer (a response's body), so a
/// scrape never holds the whole exposition as a string; <see cref="Unflushed"/> tells the
/// caller when to flush.
/// </summary>
internal sealed class MetricsText(IBufferWriter<byte> output)
{
    /// <summary>Bytes written since the caller last called <see cref="MarkFlushed"/>.</summary>
    public long Unflushed { get; private set; }

    public void MarkFlushed() => Unflushed = 0;

    public MetricsText Append(string value)
    {
        Unflushed += Encoding.UTF8.GetBytes(value, output);
        return this;
    }

    /// <summary>One ASCII character: the format's punctuation ('{', '}', ' ', '\n').</summary>
    public MetricsText Append(char value)
    {
        output.GetSpan(1)[0] = (byte)value;
        output.Advance(1);
        Unflushed++;
        return this;
    }

    public MetricsText Append(long value)
    {
        var span = output.GetSpan(20);
        value.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
        output.Advance(written);
        Unflushed += written;
        return this;
    }

    /// <summary>A float in its shortest round-trip form, as Prometheus parses it.</summary>
    public MetricsText Append(double value)
    {
        var span = output.GetSpan(32);
        value.TryFormat(span, out var written, "R", CultureInfo.InvariantCulture);
        output.Advance(written);
        Unflushed += written;
        return this;
    }
}
