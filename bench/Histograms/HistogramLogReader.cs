using System.Globalization;
using HdrHistogram;
using HdrHistogram.Utilities;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// Reads interval logs written by <see cref="HistogramLogWriter"/> or any HdrHistogram implementation
/// (log format versions 1.0 to 1.3, histogram encodings V0 to V2), with Java's HistogramLogReader timestamp rules.
/// </summary>
/// <remarks>
/// The package decodes the histograms; its own HistogramLogReader is not used because it exposes no base
/// time, reads whole logs only, and lets malformed lines through as other exceptions or empty matches.
/// </remarks>
internal sealed class HistogramLogReader
{
    private const string StartTimePrefix = "#[StartTime: ";
    private const string BaseTimePrefix = "#[BaseTime: ";
    private const string TagPrefix = "Tag=";

    // Interval timestamps earlier than a year before the start time are taken as relative to it.
    private const double RelativeTimestampThresholdSeconds = 365 * 24 * 3600.0;

    private static readonly char[] FieldSeparators = [',', ' '];

    private readonly TextReader _reader;
    private bool _observedStartTime;
    private bool _observedBaseTime;

    public HistogramLogReader(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        _reader = reader;
    }

    /// <summary>The StartTime header, or the first interval's timestamp when the log has none.</summary>
    public double StartTimeSec { get; private set; }

    /// <summary>
    /// The BaseTime header; without one, the start time when interval timestamps are relative, else 0.
    /// </summary>
    public double BaseTimeSec { get; private set; }

    /// <summary>
    /// The next interval's histogram, with its absolute start and end (milliseconds since the epoch) and tag
    /// set, or null at the end of the log.
    /// </summary>
    /// <exception cref="FormatException">An interval line or its histogram is malformed.</exception>
    public HistogramBase? NextIntervalHistogram()
    {
        while (_reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("\"StartTimestamp\"", StringComparison.Ordinal))
            {
                continue;
            }

            if (line[0] == '#')
            {
                ReadHeader(line);
                continue;
            }

            return ReadInterval(line);
        }

        return null;
    }

    private void ReadHeader(string line)
    {
        if (line.StartsWith(StartTimePrefix, StringComparison.Ordinal) &&
            TryReadSeconds(line.AsSpan(StartTimePrefix.Length), out double start))
        {
            StartTimeSec = start;
            _observedStartTime = true;
        }
        else if (line.StartsWith(BaseTimePrefix, StringComparison.Ordinal) &&
                 TryReadSeconds(line.AsSpan(BaseTimePrefix.Length), out double baseTime))
        {
            BaseTimeSec = baseTime;
            _observedBaseTime = true;
        }
    }

    private HistogramBase ReadInterval(string line)
    {
        string[] fields = line.Split(FieldSeparators, StringSplitOptions.RemoveEmptyEntries);
        string? tag = null;
        int first = 0;
        if (fields.Length > 0 && fields[0].StartsWith(TagPrefix, StringComparison.Ordinal))
        {
            tag = fields[0][TagPrefix.Length..];
            first = 1;
        }

        // start, length, max (recomputed from the histogram, so only checked for shape), histogram
        if (fields.Length - first != 4 ||
            !TryParseDouble(fields[first], out double timestamp) ||
            !TryParseDouble(fields[first + 1], out double length) ||
            !TryParseDouble(fields[first + 2], out _))
        {
            throw new FormatException($"Malformed histogram log line: {line}");
        }

        if (!_observedStartTime)
        {
            StartTimeSec = timestamp;
            _observedStartTime = true;
        }

        if (!_observedBaseTime)
        {
            BaseTimeSec = timestamp < StartTimeSec - RelativeTimestampThresholdSeconds ? StartTimeSec : 0.0;
            _observedBaseTime = true;
        }

        HistogramBase histogram = Decode(DecodeBase64(fields[first + 3], line), line);
        double absoluteStart = timestamp + BaseTimeSec;
        histogram.StartTimeStamp = (long)(absoluteStart * 1000.0);
        histogram.EndTimeStamp = (long)((absoluteStart + length) * 1000.0);
        histogram.Tag = tag;
        return histogram;
    }

    private static byte[] DecodeBase64(string text, string line)
    {
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"Malformed histogram in log line: {line}", ex);
        }
    }

    private static HistogramBase Decode(byte[] bytes, string line)
    {
        try
        {
            return HistogramEncoding.DecodeFromCompressedByteBuffer(ByteBuffer.Allocate(bytes), 0);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException or IndexOutOfRangeException or InvalidDataException)
        {
            throw new FormatException($"Malformed histogram in log line: {line}", ex);
        }
    }

    private static bool TryReadSeconds(ReadOnlySpan<char> text, out double seconds)
    {
        int end = text.IndexOfAny(' ', ',');
        return TryParseDouble(end < 0 ? text : text[..end], out seconds);
    }

    private static bool TryParseDouble(ReadOnlySpan<char> text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
}
