using Forwarder.Bench.Histograms;
using HdrHistogram;
using Forwarder.Bench.Tests.Histograms.ReferenceData;

namespace Forwarder.Bench.Tests.Histograms;

public sealed class PercentileDistributionWriterTests
{
    [Theory]
    [InlineData(1, 5)]
    [InlineData(2, 5)]
    [InlineData(3, 5)]
    [InlineData(4, 5)]
    [InlineData(5, 5)]
    [InlineData(3, 10)]
    [InlineData(3, 20)]
    [InlineData(5, 10)]
    [InlineData(5, 20)]
    public void Write_JavaSample_MatchesByteForByte(int digits, int ticksPerHalfDistance)
    {
        string expected = Sample(digits, ticksPerHalfDistance, "hgrm");
        var writer = new StringWriter();

        PercentileDistributionWriter.Write(writer, TenValues(digits), ticksPerHalfDistance, 10_000.0);

        Assert.Equal(expected, writer.ToString());
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(5, 20)]
    public void WriteCsv_JavaSample_MatchesByteForByte(int digits, int ticksPerHalfDistance)
    {
        string expected = Sample(digits, ticksPerHalfDistance, "csv");
        var writer = new StringWriter();

        PercentileDistributionWriter.WriteCsv(writer, TenValues(digits), ticksPerHalfDistance, 10_000.0);

        Assert.Equal(expected, writer.ToString());
    }

    [Fact]
    public void Write_TenMillionCountsWithOutliers_MatchesJavaSample()
    {
        // HdrHistogram.NET issue 39: only the 100% row may leave out the 1/(1-Percentile) column.
        var histogram = new LongHistogram(36_000_000_000L, 3);
        histogram.RecordValueWithCount(1, 7_604_459);
        histogram.RecordValueWithCount(383, 2_395_524);
        histogram.RecordValueWithCount(453, 2);
        histogram.RecordValueWithCount(511, 2);
        histogram.RecordValueWithCount(537, 3);
        histogram.RecordValueWithCount(672, 1);
        histogram.RecordValueWithCount(777, 1);
        foreach (long outlier in new long[] { 18143, 208127, 224639, 229759, 230271, 258943, 275711, 282111 })
        {
            histogram.RecordValueWithCount(outlier, 1);
        }

        var writer = new StringWriter();

        PercentileDistributionWriter.Write(writer, histogram);

        Assert.Equal(Normalize(JavaPercentileDistributions.Files["IsLastValueBug.hgrm"]), writer.ToString());
    }

    [Fact]
    public void WriteCsv_ClassicDataSet_MatchesPythonReferenceRows()
    {
        // HdrHistogram_py's test_output_percentile_distribution_csv: 10,000 x 1,000 and one 100,000,000,
        // 1000 ticks per half distance, values in thousands.
        var histogram = new LongHistogram(3_600_000_000L, 3);
        histogram.RecordValueWithCount(1000, 10_000);
        histogram.RecordValue(100_000_000);
        var writer = new StringWriter();

        PercentileDistributionWriter.WriteCsv(writer, histogram, 1000, 1000.0);

        string[] lines = writer.ToString().TrimEnd('\n').Split('\n');
        Assert.Equal("\"Value\",\"Percentile\",\"TotalCount\",\"1/(1-Percentile)\"", lines[0]);
        Assert.Equal("1.000,0.000000000000,10000,1.00", lines[1]);
        Assert.Equal("100007.935,1.000000000000,10001,Infinity", lines[^1]);
    }

    [Fact]
    public void Write_EmptyHistogram_WritesHeaderAndZeroFooter()
    {
        var writer = new StringWriter();

        PercentileDistributionWriter.Write(writer, new LongHistogram(3_600_000_000L, 3));

        Assert.Equal(
            "       Value     Percentile TotalCount 1/(1-Percentile)\n" +
            "\n" +
            "#[Mean    =        0.000, StdDeviation   =        0.000]\n" +
            "#[Max     =        0.000, Total count    =            0]\n" +
            "#[Buckets =           22, SubBuckets     =         2048]\n",
            writer.ToString());
    }

    [Fact]
    public void Write_SingleValueDefaultTicks_FormatsColumnsLikeJava()
    {
        // Derived from Java's format strings "%12.2f %2.12f %10d %14.2f" / "%12.2f %2.12f %10d" and the footer.
        var histogram = new LongHistogram(3_600_000_000L, 2);
        histogram.RecordValueWithCount(1234, 3);
        var writer = new StringWriter();

        PercentileDistributionWriter.Write(writer, histogram, 5, 1000.0);

        Assert.Equal(
            "       Value     Percentile TotalCount 1/(1-Percentile)\n" +
            "\n" +
            "        1.24 0.000000000000          3           1.00\n" +
            "        1.24 1.000000000000          3\n" +
            "#[Mean    =         1.24, StdDeviation   =         0.00]\n" +
            "#[Max     =         1.24, Total count    =            3]\n" +
            "#[Buckets =           25, SubBuckets     =          256]\n",
            writer.ToString());
    }

    [Theory]
    [InlineData(0.125, 2, "0.13")]
    [InlineData(0.15, 1, "0.2")]
    [InlineData(2.675, 2, "2.68")]
    [InlineData(0.45014, 1, "0.5")]
    [InlineData(1.0, 12, "1.000000000000")]
    [InlineData(100007.935, 3, "100007.935")]
    [InlineData(1e-7, 3, "0.000")]
    [InlineData(1441812279.474, 3, "1441812279.474")]
    [InlineData(double.PositiveInfinity, 2, "Infinity")]
    [InlineData(double.NaN, 2, "NaN")]
    public void Fixed_Value_RoundsShortestDigitsHalfUpLikeJava(double value, int decimals, string expected)
    {
        Assert.Equal(expected, JavaNumberFormat.Fixed(value, decimals));
    }

    [Fact]
    public void Fixed_BeyondDecimalRange_StillFormats()
    {
        Assert.StartsWith("1000000000000000", JavaNumberFormat.Fixed(1e30, 2), StringComparison.Ordinal);
    }

    private static string Sample(int digits, int ticks, string extension) =>
        Normalize(JavaPercentileDistributions.Files[
            $"Sample_10kBy1k_{digits}sf_TicksPerHour_asMs_{ticks}percPerHalfDistance.{extension}"]);

    // Java writes '\n' whatever the platform; the embedded text follows this file's line endings.
    private static string Normalize(string text) => text.ReplaceLineEndings("\n");

    private static HistogramBase TenValues(int digits)
    {
        var histogram = new LongHistogram(36_000_000_000L, digits);
        for (long value = 0; value < 10_000; value += 1000)
        {
            histogram.RecordValue(value);
        }

        return histogram;
    }
}
