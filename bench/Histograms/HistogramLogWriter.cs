using System.Globalization;
using HdrHistogram;
using HdrHistogram.Utilities;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// Writes HdrHistogram's interval log format (version 1.3, as Java's HistogramLogWriter): '#' comment and
/// header lines, a CSV legend, then one line per interval histogram:
/// <c>[Tag=name,]start,length,max,base64(compressed V2 histogram)</c>.
/// </summary>
/// <remarks>
/// The package's HistogramLogWriter writes UTF-16 (Java and the package's own reader expect ASCII),
/// rounds with .NET rather than Java, and has no BaseTime or comment lines, so only the histogram
/// encoding comes from the package.
/// </remarks>
internal sealed class HistogramLogWriter
{
    private const string LogFormatVersion = "1.3";

    private readonly TextWriter _writer;

    public HistogramLogWriter(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        _writer = writer;
    }

    public void WriteLogFormatVersion() => WriteComment($"[Histogram log format version {LogFormatVersion}]");

    /// <summary>The run's start; readers add it to interval timestamps written relative to it.</summary>
    public void WriteStartTime(double secondsSinceEpoch)
    {
        // Java appends Date.toString(); this writes the same layout in UTC so logs do not vary by machine.
        DateTimeOffset start = DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(secondsSinceEpoch * 1000.0));
        string date = start.ToString("ddd MMM dd HH:mm:ss 'UTC' yyyy", CultureInfo.InvariantCulture);
        _writer.Write($"#[StartTime: {JavaNumberFormat.Fixed(secondsSinceEpoch, 3)} (seconds since epoch), {date}]\n");
    }

    public void WriteBaseTime(double seconds) =>
        _writer.Write($"#[BaseTime: {JavaNumberFormat.Fixed(seconds, 3)} (seconds since epoch)]\n");

    /// <summary>Writes <paramref name="text"/> as comment lines (each line of it prefixed with '#').</summary>
    public void WriteComment(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (string line in text.Split('\n'))
        {
            _writer.Write($"#{line.TrimEnd('\r')}\n");
        }
    }

    public void WriteLegend() =>
        _writer.Write("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");

    /// <summary>
    /// Writes one interval: its start and length in seconds, its maximum divided by
    /// <paramref name="maxValueUnitRatio"/> (nanoseconds to milliseconds by default), its tag if any, and the
    /// histogram itself.
    /// </summary>
    public void WriteHistogram(HistogramBase h, double startSeconds, double lengthSeconds, double maxValueUnitRatio = 1_000_000.0)
    {
        ArgumentNullException.ThrowIfNull(h);
        if (h.Tag is { } tag)
        {
            // Readers split lines on these characters.
            if (tag.AsSpan().IndexOfAny(", \r\n") >= 0)
            {
                throw new ArgumentException("A histogram tag cannot contain commas, spaces or line breaks.", nameof(h));
            }

            _writer.Write($"Tag={tag},");
        }

        var buffer = ByteBuffer.Allocate(h.GetNeededByteBufferCapacity());
        var encoded = new byte[h.EncodeIntoCompressedByteBuffer(buffer)];
        // The buffer's array is internal to the package: read it back a byte at a time.
        buffer.Position = 0;
        for (int i = 0; i < encoded.Length; i++)
        {
            encoded[i] = buffer.Get();
        }

        string histogram = Convert.ToBase64String(encoded);
        _writer.Write(
            $"{JavaNumberFormat.Fixed(startSeconds, 3)},{JavaNumberFormat.Fixed(lengthSeconds, 3)}," +
            $"{JavaNumberFormat.Fixed(h.Max() / maxValueUnitRatio, 3)},{histogram}\n");
    }
}
