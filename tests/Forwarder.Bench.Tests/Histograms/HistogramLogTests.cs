using Forwarder.Bench.Histograms;
using HdrHistogram;
using HdrHistogram.Utilities;
using HistogramLogReader = Forwarder.Bench.Histograms.HistogramLogReader;
using HistogramLogWriter = Forwarder.Bench.Histograms.HistogramLogWriter;
using Forwarder.Bench.Tests.Histograms.ReferenceData;

namespace Forwarder.Bench.Tests.Histograms;

public sealed class HistogramLogTests
{
    // Java's HistogramLogReaderWriterTest totals for the logs in ReferenceData (whole-log reads).
    [Theory]
    [InlineData(nameof(JavaHistogramLogs.JHiccupV2), 62, 48_761L, 1_745_879_039L, 1_796_210_687L, 1441812279.474)]
    [InlineData(nameof(JavaHistogramLogs.JHiccupV1), 88, 65_964L, 1_829_765_119L, 1_888_485_375L, 1438867590.285)]
    [InlineData(nameof(JavaHistogramLogs.JHiccupV0), 81, 61_256L, 1_510_998_015L, 1_569_718_271L, 1438869961.225)]
    public void NextIntervalHistogram_JavaLog_MatchesPublishedTotals(
        string log, int expectedHistograms, long expectedTotalCount, long expectedP999, long expectedMax, double expectedStart)
    {
        var reader = new HistogramLogReader(new StringReader(JavaLog(log)));
        var accumulated = new LongHistogram(3_600_000_000_000L, 3);
        int histograms = 0;
        long totalCount = 0;

        while (reader.NextIntervalHistogram() is { } histogram)
        {
            histograms++;
            totalCount += histogram.TotalCount;
            accumulated.Add(histogram);
        }

        Assert.Equal(expectedHistograms, histograms);
        Assert.Equal(expectedTotalCount, totalCount);
        Assert.Equal(expectedP999, accumulated.GetValueAtPercentile(99.9));
        Assert.Equal(expectedMax, accumulated.GetMaxValue());
        Assert.Equal(expectedStart, reader.StartTimeSec, 1e-6);
    }

    [Fact]
    public void NextIntervalHistogram_JHiccupV2Log_MaxColumnMatchesDecodedHistograms()
    {
        string[] lines = JavaHistogramLogs.JHiccupV2.ReplaceLineEndings("\n").Split('\n');
        var reader = new HistogramLogReader(new StringReader(JavaHistogramLogs.JHiccupV2));
        int checkedLines = 0;

        foreach (string line in lines.Where(l => l.Length > 0 && char.IsDigit(l[0])))
        {
            string[] fields = line.Split(',');
            HistogramBase histogram = reader.NextIntervalHistogram()!;

            Assert.Equal(fields[2], JavaNumberFormat.Fixed(histogram.GetMaxValue() / 1_000_000.0, 3));
            checkedLines++;
        }

        Assert.Equal(62, checkedLines);
        Assert.Null(reader.NextIntervalHistogram());
    }

    [Fact]
    public void NextIntervalHistogram_RelativeTimestamps_AbsoluteFromStartTime()
    {
        var reader = new HistogramLogReader(new StringReader(JavaHistogramLogs.JHiccupV2));

        HistogramBase first = reader.NextIntervalHistogram()!;

        // No BaseTime header and 0.127 is long before the start time, so timestamps are start-relative.
        Assert.Equal(1441812279.474, reader.BaseTimeSec, 1e-6);
        Assert.Equal((long)((0.127 + 1441812279.474) * 1000.0), first.StartTimeStamp);
        Assert.Equal((long)((0.127 + 1441812279.474 + 1.007) * 1000.0), first.EndTimeStamp);
        Assert.Null(first.Tag);
    }

    [Fact]
    public void NextIntervalHistogram_TaggedLog_TaggedAndUntaggedHalvesAreEqual()
    {
        var reader = new HistogramLogReader(new StringReader(JavaHistogramLogs.TaggedV2));
        var untagged = new LongHistogram(3_600_000_000_000L, 3);
        var taggedA = new LongHistogram(3_600_000_000_000L, 3);
        int histograms = 0;
        long totalCount = 0;

        while (reader.NextIntervalHistogram() is { } histogram)
        {
            histograms++;
            totalCount += histogram.TotalCount;
            if (histogram.Tag == "A")
            {
                taggedA.Add(histogram);
            }
            else
            {
                Assert.Null(histogram.Tag);
                untagged.Add(histogram);
            }
        }

        Assert.Equal(42, histograms);
        Assert.Equal(32_290, totalCount);
        HistogramAssert.SameCounts(untagged, taggedA);
    }

    [Fact]
    public void WriteThenRead_TaggedHistogramsWithTimes_RoundTrip()
    {
        var first = new LongHistogram(1, 3_600_000_000_000L, 3) { Tag = "get" };
        first.RecordValueWithCount(1_250_000, 40);
        first.RecordValue(9_876_543);
        var second = new LongHistogram(1000, 3_600_000_000_000L, 2);
        second.RecordValue(3_000_000_000);
        var output = new StringWriter();
        var writer = new HistogramLogWriter(output);

        writer.WriteLogFormatVersion();
        writer.WriteStartTime(1_700_000_000.5);
        writer.WriteBaseTime(1_700_000_000.0);
        writer.WriteComment("forwarder bench\nsecond line");
        writer.WriteLegend();
        writer.WriteHistogram(first, 0.5, 1.0);
        writer.WriteHistogram(second, 1.5, 0.25);

        var reader = new HistogramLogReader(new StringReader(output.ToString()));
        HistogramBase readFirst = reader.NextIntervalHistogram()!;
        HistogramBase readSecond = reader.NextIntervalHistogram()!;

        Assert.Null(reader.NextIntervalHistogram());
        Assert.Equal(1_700_000_000.5, reader.StartTimeSec);
        Assert.Equal(1_700_000_000.0, reader.BaseTimeSec);
        HistogramAssert.SameCounts(first, readFirst);
        HistogramAssert.SameCounts(second, readSecond);
        Assert.Equal("get", readFirst.Tag);
        Assert.Null(readSecond.Tag);
        Assert.Equal(1000, readSecond.LowestTrackableValue);
        Assert.Equal(1_700_000_000_500L, readFirst.StartTimeStamp);
        Assert.Equal(1_700_000_001_500L, readFirst.EndTimeStamp);
        Assert.Equal(1_700_000_001_500L, readSecond.StartTimeStamp);
        Assert.Equal(1_700_000_001_750L, readSecond.EndTimeStamp);
    }

    [Fact]
    public void Writer_HeaderLines_MatchJavaLayout()
    {
        var output = new StringWriter();
        var writer = new HistogramLogWriter(output);

        writer.WriteComment("[Logged with forwarder bench]");
        writer.WriteLogFormatVersion();
        writer.WriteStartTime(1441812279.474);
        writer.WriteBaseTime(1441812279.474);
        writer.WriteLegend();

        Assert.Equal(
            "#[Logged with forwarder bench]\n" +
            "#[Histogram log format version 1.3]\n" +
            "#[StartTime: 1441812279.474 (seconds since epoch), Wed Sep 09 15:24:39 UTC 2015]\n" +
            "#[BaseTime: 1441812279.474 (seconds since epoch)]\n" +
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
            output.ToString());
    }

    [Fact]
    public void WriteHistogram_JavaInterval_ReproducesJavaColumns()
    {
        var reader = new HistogramLogReader(new StringReader(JavaHistogramLogs.TaggedV2));
        reader.NextIntervalHistogram();
        HistogramBase tagged = reader.NextIntervalHistogram()!;
        var output = new StringWriter();

        new HistogramLogWriter(output).WriteHistogram(tagged, 0.127, 1.007);

        string line = output.ToString();
        Assert.StartsWith("Tag=A,0.127,1.007,2.769,HISTFAAA", line, StringComparison.Ordinal);
        Assert.EndsWith("\n", line, StringComparison.Ordinal);
        string encoded = line.TrimEnd('\n').Split(',')[4];
        HistogramAssert.SameCounts(tagged, HistogramEncoding.DecodeFromCompressedByteBuffer(ByteBuffer.Allocate(Convert.FromBase64String(encoded)), 0));
    }

    [Theory]
    [InlineData("a,b")]
    [InlineData("a b")]
    [InlineData("a\nb")]
    public void WriteHistogram_TagWithSeparator_ThrowsArgumentException(string tag)
    {
        var writer = new HistogramLogWriter(new StringWriter());

        Assert.Throws<ArgumentException>(() => writer.WriteHistogram(new LongHistogram(1000, 3) { Tag = tag }, 0, 1));
    }

    [Fact]
    public void NextIntervalHistogram_LogWithoutIntervals_ReturnsNullAndKeepsStartTime()
    {
        // Java's emptyLog test: a start time of 1000 ms and no histograms.
        var output = new StringWriter();
        var writer = new HistogramLogWriter(output);
        writer.WriteLogFormatVersion();
        writer.WriteStartTime(1.0);
        writer.WriteLogFormatVersion();
        writer.WriteLegend();

        var reader = new HistogramLogReader(new StringReader(output.ToString()));

        Assert.Null(reader.NextIntervalHistogram());
        Assert.Equal(1.0, reader.StartTimeSec, 1e-6);
    }

    [Fact]
    public void NextIntervalHistogram_EmptyHistogramsWithAbsoluteTimes_KeepTimestamps()
    {
        // Java's emptyHistogramsInLog test: absolute interval times close to the start time mean base time 0.
        var output = new StringWriter();
        var writer = new HistogramLogWriter(output);
        writer.WriteLogFormatVersion();
        writer.WriteStartTime(11.0);
        writer.WriteLegend();
        var empty = new LongHistogram(100, 2);
        writer.WriteHistogram(empty, 11.1, 1.0);
        writer.WriteHistogram(empty, 12.1, 1.0);

        var reader = new HistogramLogReader(new StringReader(output.ToString()));
        HistogramBase first = reader.NextIntervalHistogram()!;
        HistogramBase second = reader.NextIntervalHistogram()!;

        Assert.Equal(11.0, reader.StartTimeSec, 1e-6);
        Assert.Equal(0.0, reader.BaseTimeSec);
        Assert.Equal(0, first.TotalCount);
        Assert.Equal(11100, first.StartTimeStamp);
        Assert.Equal(12100, first.EndTimeStamp);
        Assert.Equal(12100, second.StartTimeStamp);
        Assert.Equal(13100, second.EndTimeStamp);
        Assert.Null(reader.NextIntervalHistogram());
    }

    [Theory]
    [InlineData("0.127,1.007,HISTFAAAAEV42pNpmSzMwMCgyAABTBDKT4GBgdnNYMcCBvsPEBEJISEuATEZMQ4uASkhIR4nrxg9v2lMaxhvMekILGZkKmcCAEf2CsI=")]
    [InlineData("zero,1.007,2.769,HISTFAAAAEV42pNpmSzMwMCgyAABTBDKT4GBgdnNYMcCBvsPEBEJISEuATEZMQ4uASkhIR4nrxg9v2lMaxhvMekILGZkKmcCAEf2CsI=")]
    [InlineData("0.127,1.007,2.769,not-base64!")]
    [InlineData("0.127,1.007,2.769,AAAAAAAAAAA=")]
    public void NextIntervalHistogram_MalformedLine_ThrowsFormatException(string line)
    {
        var reader = new HistogramLogReader(new StringReader(line + "\n"));

        Assert.Throws<FormatException>(() => reader.NextIntervalHistogram());
    }

    private static string JavaLog(string name) => name switch
    {
        nameof(JavaHistogramLogs.JHiccupV2) => JavaHistogramLogs.JHiccupV2,
        nameof(JavaHistogramLogs.JHiccupV1) => JavaHistogramLogs.JHiccupV1,
        _ => JavaHistogramLogs.JHiccupV0,
    };
}
