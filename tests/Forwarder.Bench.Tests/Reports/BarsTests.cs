using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class BarsTests
{
    private static SvgTestDocument Chart(params Bar[] bars) => new(SvgCharts.Bars("Throughput", "req/s", bars));

    private static double Right(System.Xml.Linq.XElement rect) => SvgTestDocument.Number(rect, "x") + SvgTestDocument.Number(rect, "width");

    [Fact]
    public void Bars_AnyInput_IsStandaloneSvgWithViewBox()
    {
        var chart = Chart(new Bar("direct", 100, 90, 110));

        Assert.Equal(SvgTestDocument.Svg + "svg", chart.Root.Name);
        Assert.Equal("0 0 720 360", (string?)chart.Root.Attribute("viewBox"));
        Assert.Equal("Throughput", chart.Texts("title").Single());
        Assert.Equal("req/s", chart.Texts("axis-title").Single());
        Assert.Equal("#ffffff", (string?)chart.ByClass("background").Single().Attribute("fill"));
    }

    [Fact]
    public void Bars_TwiceTheMedian_TwiceAsLong()
    {
        var chart = Chart(new Bar("one", 1_000, 1_000, 1_000), new Bar("two", 2_000, 2_000, 2_000));

        var rects = chart.ByClass("bar");
        Assert.Equal(SvgTestDocument.Number(rects[0], "x"), SvgTestDocument.Number(rects[1], "x"));
        Assert.Equal(2 * SvgTestDocument.Number(rects[0], "width"), SvgTestDocument.Number(rects[1], "width"), 0.02);
    }

    [Fact]
    public void Bars_Whisker_EndsAtMinAndMax()
    {
        var chart = Chart(new Bar("spread", 100, 80, 130));

        var rect = chart.ByClass("bar").Single();
        double left = SvgTestDocument.Number(rect, "x");
        double pixelsPerUnit = SvgTestDocument.Number(rect, "width") / 100;
        var whisker = chart.ByClass("whisker").Single();
        Assert.Equal(left + 80 * pixelsPerUnit, SvgTestDocument.Number(whisker, "x1"), 0.05);
        Assert.Equal(left + 130 * pixelsPerUnit, SvgTestDocument.Number(whisker, "x2"), 0.05);
        Assert.Equal(2, chart.ByClass("whisker-cap").Count);
    }

    [Fact]
    public void Bars_NoSpread_DrawsNoWhisker()
    {
        var chart = Chart(new Bar("single run", 100, 100, 100));

        Assert.Empty(chart.ByClass("whisker"));
        Assert.Empty(chart.ByClass("whisker-cap"));
    }

    [Fact]
    public void Bars_ValueLabel_CompactMedianWithUnitPastTheWhisker()
    {
        var chart = Chart(new Bar("a", 15_432, 15_000, 16_000));

        var value = chart.ByClass("value").Single();
        Assert.Equal("15.4k req/s", value.Value);
        Assert.True(SvgTestDocument.Number(value, "x") > SvgTestDocument.Number(chart.ByClass("whisker").Single(), "x2"));
    }

    [Fact]
    public void Bars_Axis_StartsAtZeroAndCoversTheLongestWhisker()
    {
        var chart = Chart(new Bar("a", 12_000, 11_000, 13_400), new Bar("b", 9_000, 8_000, 9_500));

        var ticks = chart.ByClass("x-tick");
        Assert.Equal("0", ticks[0].Value);
        Assert.Equal(SvgTestDocument.Number(chart.ByClass("bar")[0], "x"), SvgTestDocument.Number(ticks[0], "x"));
        Assert.True(SvgTestDocument.Number(ticks[^1], "x") >= chart.ByClass("whisker").Max(w => SvgTestDocument.Number(w, "x2")));
        Assert.Equal(["0", "2k", "4k", "6k", "8k", "10k", "12k", "14k"], ticks.Select(t => t.Value));
    }

    [Fact]
    public void Bars_MarkupInLabels_IsEscaped()
    {
        var svg = SvgCharts.Bars("t", "req/s", [new Bar("a<b&c", 1, 1, 1)]);

        Assert.Contains("a&lt;b&amp;c", svg, StringComparison.Ordinal);
        Assert.Equal("a<b&c", new SvgTestDocument(svg).Texts("bar-label").Single());
    }

    [Fact]
    public void Bars_LongLabel_ShortenedWithFullTextAsTooltip()
    {
        string label = new string('x', 200);

        var chart = Chart(new Bar(label, 1, 1, 1));

        var text = chart.ByClass("bar-label").Single();
        Assert.EndsWith("…", chart.Texts("bar-label").Single(), StringComparison.Ordinal);
        Assert.Equal(label, text.Element(SvgTestDocument.Svg + "title")!.Value);
    }

    [Fact]
    public void Bars_ManyBars_GrowTallerSoLabelsKeepApart()
    {
        var chart = Chart(Enumerable.Range(0, 40).Select(i => new Bar($"bar {i}", i, i, i)).ToArray());

        var ys = chart.ByClass("bar-label").Select(t => SvgTestDocument.Number(t, "y")).ToList();
        Assert.All(ys.Zip(ys.Skip(1)), pair => Assert.True(pair.Second - pair.First >= 16));
        Assert.True(SvgTestDocument.Number(chart.Root, "height") > 360);
    }

    [Fact]
    public void Bars_NineBars_CycleThroughPalette()
    {
        var chart = Chart(Enumerable.Range(0, 9).Select(i => new Bar($"b{i}", 1, 1, 1)).ToArray());

        var fills = chart.ByClass("bar").Select(r => (string)r.Attribute("fill")!).ToList();
        Assert.Equal(SvgCharts.Palette, fills.Take(8));
        Assert.Equal(fills[0], fills[8]);
    }

    [Fact]
    public void Bars_NoBars_SaysNoData()
    {
        var chart = Chart();

        Assert.Equal("no data", chart.Texts("no-data").Single());
        Assert.Empty(chart.ByClass("bar"));
    }

    // Keyed by name because Bar is internal and cannot appear in a public theory's signature.
    private static readonly Dictionary<string, Bar[]> Degenerate = new()
    {
        ["no bars"] = [],
        ["all zero"] = [new Bar("zero", 0, 0, 0)],
        ["negative"] = [new Bar("negative", -5, -10, -1)],
        ["not finite"] = [new Bar("not finite", double.NaN, double.NegativeInfinity, double.PositiveInfinity)],
        ["min above max"] = [new Bar("inverted", 5, 9, 1)],
        ["empty label"] = [new Bar("", 1, 1, 1)],
    };

    public static TheoryData<string> DegenerateCases => new(Degenerate.Keys);

    [Theory]
    [MemberData(nameof(DegenerateCases))]
    public void Bars_DegenerateInput_WritesOnlyFiniteNumbers(string degenerateCase)
    {
        // The checks for NaN and Infinity are in SvgTestDocument's constructor.
        var chart = Chart(Degenerate[degenerateCase]);

        Assert.NotEmpty(chart.ByClass("x-tick"));
    }

    [Fact]
    public void Bars_SameInput_SameBytes() =>
        Assert.Equal(
            SvgCharts.Bars("t", "MiB", [new Bar("a", 1.5, 1, 2), new Bar("b", 3, 3, 3)]),
            SvgCharts.Bars("t", "MiB", [new Bar("a", 1.5, 1, 2), new Bar("b", 3, 3, 3)]));
}
