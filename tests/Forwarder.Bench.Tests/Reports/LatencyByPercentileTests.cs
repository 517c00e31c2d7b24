using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class LatencyByPercentileTests
{
    private static readonly (double, double)[] TypicalPoints = [(0, 0.1), (50, 0.2), (90, 0.3), (99, 0.5), (99.9, 0.87), (100, 0.9)];

    private static SvgTestDocument Chart(params LatencySeries[] series) => new(SvgCharts.LatencyByPercentile("Latency", series));

    private static LatencySeries Series(string label, params (double, double)[] points) => new(label, points);

    private static double TickX(SvgTestDocument chart, string label) =>
        SvgTestDocument.Number(chart.ByClass("x-tick").Single(t => t.Value == label), "x");

    [Fact]
    public void LatencyByPercentile_AnyInput_IsStandaloneSvgWithViewBox()
    {
        var chart = Chart(Series("direct", TypicalPoints));

        Assert.Equal(SvgTestDocument.Svg + "svg", chart.Root.Name);
        Assert.Equal("1.1", (string?)chart.Root.Attribute("version"));
        Assert.Equal("0 0 720 420", (string?)chart.Root.Attribute("viewBox"));
        Assert.Equal("720", (string?)chart.Root.Attribute("width"));
        Assert.Equal("420", (string?)chart.Root.Attribute("height"));
        Assert.Contains("sans-serif", (string?)chart.Root.Attribute("font-family"), StringComparison.Ordinal);
        Assert.Equal("Latency", chart.Root.Elements(SvgTestDocument.Svg + "title").Single().Value);
        Assert.Equal("#ffffff", (string?)chart.ByClass("background").Single().Attribute("fill"));
        Assert.Equal(["Percentile", "Latency (ms)"], chart.Texts("axis-title"));
    }

    [Theory]
    [InlineData(50, "99.9%")]
    [InlineData(99.9, "99.9%")]
    [InlineData(99.95, "99.99%")]
    [InlineData(99.99, "99.99%")]
    [InlineData(99.999, "99.999%")]
    [InlineData(99.99999, "99.999%")]
    public void LatencyByPercentile_HighestPercentile_LabelsTicksAsFarAsTheData(double highest, string lastTick)
    {
        var chart = Chart(Series("s", (0, 1), (highest, 2), (100, 3)));

        var labels = chart.Texts("x-tick");
        Assert.Equal(["0%", "90%", "99%", "99.9%"], labels.Take(4));
        Assert.Equal(lastTick, labels[^1]);
    }

    [Fact]
    public void LatencyByPercentile_Ticks_AreEquallySpacedDecades()
    {
        var chart = Chart(Series("s", (0, 1), (99.999, 2)));

        double x90 = TickX(chart, "90%");
        double x99 = TickX(chart, "99%");
        double x999 = TickX(chart, "99.9%");
        Assert.True(x99 > x90);
        Assert.Equal(x99 - x90, x999 - x99, 0.02);
        Assert.Equal(x90 - TickX(chart, "0%"), x99 - x90, 0.02);
    }

    [Fact]
    public void LatencyByPercentile_Series_OnePointPerInputOnTheLogScale()
    {
        var chart = Chart(Series("s", TypicalPoints));

        var points = SvgTestDocument.Points(chart.ByClass("series").Single());
        Assert.Equal(TypicalPoints.Length, points.Count);
        Assert.True(points[3].X > points[2].X);
        Assert.Equal(TickX(chart, "90%"), points[2].X, 0.02);
        Assert.Equal(TickX(chart, "99%"), points[3].X, 0.02);
        Assert.Equal(TickX(chart, "99.9%"), points[4].X, 0.02);
    }

    [Fact]
    public void LatencyByPercentile_LargestLatency_IsHighestPoint()
    {
        var chart = Chart(Series("s", (0, 0.1), (90, 5), (99, 0.4), (99.9, 0.3)));

        var points = SvgTestDocument.Points(chart.ByClass("series").Single());
        Assert.Equal(points.Min(p => p.Y), points[1].Y);
        Assert.Equal(points.Max(p => p.Y), points[0].Y);
    }

    [Fact]
    public void LatencyByPercentile_YAxis_StartsAtZeroWithNiceCompactTicks()
    {
        var chart = Chart(Series("s", (0, 0.1), (99.9, 0.87)));

        Assert.Equal(["0", "0.2", "0.4", "0.6", "0.8", "1"], chart.Texts("y-tick"));
        var gridYs = chart.ByClass("y-grid").Select(g => SvgTestDocument.Number(g, "y1")).ToList();
        Assert.Equal(gridYs.OrderDescending(), gridYs);
    }

    [Fact]
    public void LatencyByPercentile_PercentileHundred_ClampsToLastTick()
    {
        var chart = Chart(Series("s", (0, 1), (99.9, 2), (100, 3)));

        var points = SvgTestDocument.Points(chart.ByClass("series").Single());
        Assert.Equal(TickX(chart, "99.9%"), points[^1].X, 0.02);
    }

    [Fact]
    public void LatencyByPercentile_SinglePoint_DrawsDotWhereThePointIs()
    {
        var chart = Chart(Series("one", (99, 2)), Series("two", (0, 1), (99, 2)));

        var dot = chart.ByClass("series-dot").Single();
        var point = SvgTestDocument.Points(chart.ByClass("series")[0]).Single();
        Assert.Equal((point.X, point.Y), (SvgTestDocument.Number(dot, "cx"), SvgTestDocument.Number(dot, "cy")));
    }

    [Fact]
    public void LatencyByPercentile_SeveralSeries_EachHasOwnColourAndLegendEntry()
    {
        var series = Enumerable.Range(0, 9).Select(i => Series($"s{i}", (0, i), (99, i + 1))).ToArray();

        var chart = Chart(series);

        var strokes = chart.ByClass("series").Select(p => (string)p.Attribute("stroke")!).ToList();
        Assert.Equal(SvgCharts.Palette, strokes.Take(8));
        Assert.Equal(strokes[0], strokes[8]);
        Assert.Equal(9, chart.ByClass("legend-swatch").Count);
        Assert.Equal("s8 (max 9 ms)", chart.Texts("legend")[8]);
    }

    [Fact]
    public void LatencyByPercentile_MarkupInLabels_IsEscaped()
    {
        var svg = SvgCharts.LatencyByPercentile("p99 < 1ms & \"fast\"", [Series("a<b&c", TypicalPoints)]);

        Assert.Contains("a&lt;b&amp;c", svg, StringComparison.Ordinal);
        var chart = new SvgTestDocument(svg);
        Assert.Equal("p99 < 1ms & \"fast\"", chart.Texts("title").Single());
        Assert.StartsWith("a<b&c", chart.Texts("legend").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void LatencyByPercentile_NoSeries_SaysNoData()
    {
        var chart = Chart();

        Assert.Equal("no data", chart.Texts("no-data").Single());
        Assert.Empty(chart.ByClass("series"));
        Assert.Equal(["0%", "90%", "99%", "99.9%"], chart.Texts("x-tick"));
    }

    // Keyed by name because the series type is internal and cannot appear in a public theory's signature.
    private static readonly Dictionary<string, LatencySeries[]> Degenerate = new()
    {
        ["no series"] = [],
        ["no points"] = [Series("empty")],
        ["single point"] = [Series("single", (50, 1))],
        ["all zeros"] = [Series("zeros", (0, 0), (99, 0), (100, 0))],
        ["only 100%"] = [Series("only 100", (100, 2))],
        ["outside 0..100"] = [Series("beyond", (-5, 1), (120, 2))],
        ["negative latency"] = [Series("negative", (0, -1), (90, -2))],
        ["not finite"] = [Series("not finite", (double.NaN, 1), (50, double.PositiveInfinity), (90, double.NaN), (99, 2))],
    };

    public static TheoryData<string> DegenerateCases => new(Degenerate.Keys);

    [Theory]
    [MemberData(nameof(DegenerateCases))]
    public void LatencyByPercentile_DegenerateInput_WritesOnlyFiniteNumbers(string degenerateCase)
    {
        // The checks for NaN and Infinity are in SvgTestDocument's constructor.
        var chart = Chart(Degenerate[degenerateCase]);

        Assert.NotEmpty(chart.ByClass("x-tick"));
    }

    [Fact]
    public void LatencyByPercentile_SameInput_SameBytes() =>
        Assert.Equal(
            SvgCharts.LatencyByPercentile("t", [Series("a", TypicalPoints), Series("b", TypicalPoints)]),
            SvgCharts.LatencyByPercentile("t", [Series("a", TypicalPoints), Series("b", TypicalPoints)]));
}
