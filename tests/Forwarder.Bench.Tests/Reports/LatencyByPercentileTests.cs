using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class LatencyByPercentileTests
{
    private static readonly (double, double)[] TypicalPoints = [(0, 0.2), (50, 0.3), (90, 0.5), (99, 0.8), (99.9, 1.5), (100, 2)];

    private static SvgTestDocument Chart(params LatencySeries[] series) => new(Charts.LatencyByPercentile("Latency", series));

    private static LatencySeries Series(string label, params (double, double)[] points) => new(label, points);

    [Fact]
    public void LatencyByPercentile_TwoArms_ValidSvgWithEachLegendEntryAndLogAxisTicks()
    {
        var chart = Chart(Series("direct", TypicalPoints), Series("forwarder", [.. TypicalPoints.Select(p => (p.Item1, p.Item2 * 2))]));

        Assert.Equal("720", (string?)chart.Root.Attribute("width"));
        Assert.Equal("420", (string?)chart.Root.Attribute("height"));
        Assert.Contains("Latency", chart.Texts);
        Assert.Contains("Percentile", chart.Texts);
        Assert.Contains("Latency (ms)", chart.Texts);
        Assert.Contains("direct (max 2 ms)", chart.Texts);
        Assert.Contains("forwarder (max 4 ms)", chart.Texts);
        Assert.All(["0%", "90%", "99%", "99.9%"], tick => Assert.Contains(tick, chart.Texts));
    }

    [Theory]
    [InlineData(50.0, "99.9%")]
    [InlineData(99.99, "99.99%")]
    [InlineData(99.9999, "99.999%")]
    public void LatencyByPercentile_HighestPercentile_LabelsTicksAsFarAsTheData(double highest, string lastTick)
    {
        var chart = Chart(Series("a", (0, 1), (highest, 2)));

        var ticks = chart.Texts.Where(t => t.EndsWith('%')).ToList();
        Assert.Equal(lastTick, ticks[^1]);
        Assert.DoesNotContain("99.9999%", chart.Texts);
    }

    [Fact]
    public void LatencyByPercentile_Ticks_AreEquallySpacedDecades()
    {
        var chart = Chart(Series("a", TypicalPoints));

        double x0 = chart.TextAt("0%").X, x90 = chart.TextAt("90%").X, x99 = chart.TextAt("99%").X, x999 = chart.TextAt("99.9%").X;
        Assert.True(x99 > x90);
        Assert.Equal(x90 - x0, x99 - x90, 0.05);
        Assert.Equal(x99 - x90, x999 - x99, 0.05);
    }

    [Fact]
    public void LatencyByPercentile_Series_PointsSitOnTheirPercentileTicks()
    {
        var chart = Chart(Series("a", TypicalPoints));

        // The longest stroke in the series' colour is its line (the other is its legend swatch).
        var points = chart.Strokes(Charts.Palette[0]).MaxBy(s => s.Count)!;
        Assert.Equal(TypicalPoints.Length, points.Count);
        Assert.Equal(chart.TextAt("90%").X, points[2].X, 0.05);
        Assert.Equal(chart.TextAt("99%").X, points[3].X, 0.05);
        Assert.Equal(chart.TextAt("99.9%").X, points[4].X, 0.05);

        // 100% is infinitely far out: clamped to the last decade drawn.
        Assert.Equal(chart.TextAt("99.9%").X, points[5].X, 0.05);

        // Higher latency is higher up (smaller y).
        Assert.True(points[4].Y < points[3].Y);
    }

    [Fact]
    public void LatencyByPercentile_NineSeries_EachHasOwnColourInPaletteOrder()
    {
        var chart = Chart([.. Enumerable.Range(0, 9).Select(i => Series($"s{i}", (0, i + 1), (99, i + 1)))]);

        for (int i = 0; i < 8; i++)
        {
            Assert.Contains(chart.Strokes(Charts.Palette[i]), s => s.Count == 2 && s[0].X != s[1].X && s[0].Y == s[1].Y);
        }

        // The ninth series takes the first colour again.
        Assert.True(chart.Strokes(Charts.Palette[0]).Count(s => s.Count == 2) >= 2);
        Assert.Contains("s8 (max 9 ms)", chart.Texts);
    }

    [Fact]
    public void LatencyByPercentile_MarkupInLabels_IsEscaped()
    {
        var svg = Charts.LatencyByPercentile("p99 < 1ms & \"fast\"", [Series("a<b&c", TypicalPoints)]);

        Assert.Contains("a&lt;b&amp;c", svg, StringComparison.Ordinal);
        var chart = new SvgTestDocument(svg);
        Assert.Contains("p99 < 1ms & \"fast\"", chart.Texts);
        Assert.Contains("a<b&c (max 2 ms)", chart.Texts);
    }

    [Fact]
    public void LatencyByPercentile_NoSeries_SaysNoDataAndKeepsTheAxis()
    {
        var chart = Chart();

        Assert.Contains("no data", chart.Texts);
        Assert.Equal(["0%", "90%", "99%", "99.9%"], chart.Texts.Where(t => t.EndsWith('%')));
    }

    public static TheoryData<string> DegenerateCases => [.. Degenerate.Keys];

    private static readonly Dictionary<string, LatencySeries[]> Degenerate = new()
    {
        ["empty series"] = [Series("empty")],
        ["all zero"] = [Series("zero", (0, 0), (99, 0))],
        ["not finite"] = [Series("nan", (double.NaN, 1), (50, double.PositiveInfinity), (90, 1))],
        ["single point"] = [Series("one", (50, 1))],
        ["empty label"] = [Series(string.Empty, TypicalPoints)],
    };

    [Theory]
    [MemberData(nameof(DegenerateCases))]
    public void LatencyByPercentile_DegenerateInput_WritesOnlyFiniteNumbers(string degenerateCase)
    {
        var chart = new SvgTestDocument(Charts.LatencyByPercentile("t", Degenerate[degenerateCase]));

        Assert.Contains("90%", chart.Texts);
    }
}
