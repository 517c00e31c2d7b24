using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class BarsTests
{
    private static SvgTestDocument Chart(params Bar[] bars) => new(Charts.Bars("Throughput", "req/s", bars));

    [Fact]
    public void Bars_TwoArms_ValidSvgWithLabelsAndCompactValues()
    {
        var chart = Chart(new Bar("direct", 15_432, 15_000, 16_000), new Bar("forwarder", 9_000, 9_000, 9_000));

        Assert.Equal("720", (string?)chart.Root.Attribute("width"));
        Assert.Contains("Throughput", chart.Texts);
        Assert.Contains("req/s", chart.Texts);
        Assert.Contains("direct", chart.Texts);
        Assert.Contains("forwarder", chart.Texts);
        Assert.Contains("15.4k req/s", chart.Texts);
        Assert.Contains("9k req/s", chart.Texts);
    }

    [Fact]
    public void Bars_FirstBar_IsOnTop()
    {
        var chart = Chart(new Bar("first", 1, 1, 1), new Bar("second", 2, 2, 2));

        Assert.True(chart.TextAt("first").Y < chart.TextAt("second").Y);
    }

    [Fact]
    public void Bars_Spread_DrawsWhiskerOnlyWhereRepetitionsDiffer()
    {
        Assert.NotEmpty(Chart(new Bar("spread", 100, 80, 130)).Strokes("#222222"));
        Assert.Empty(Chart(new Bar("single run", 100, 100, 100)).Strokes("#222222"));
    }

    [Fact]
    public void Bars_NineBars_FilledInPaletteOrder()
    {
        var chart = Chart([.. Enumerable.Range(0, 9).Select(i => new Bar($"b{i}", i + 1, i + 1, i + 1))]);

        var fills = chart.Fills.Where(f => Charts.Palette.Contains(f)).Distinct().ToList();
        Assert.Equal(Charts.Palette.Where(c => c != "#000000"), fills.Where(c => c != "#000000"));
    }

    [Theory]
    [InlineData("all zero", 0, 0, 0)]
    [InlineData("negative", -5, -10, -1)]
    [InlineData("not finite", double.NaN, double.NegativeInfinity, double.PositiveInfinity)]
    [InlineData("inverted", 5, 9, 1)]
    [InlineData("", 1, 1, 1)]
    public void Bars_DegenerateInput_WritesOnlyFiniteNumbers(string label, double median, double min, double max)
    {
        _ = Chart(new Bar(label, median, min, max));
    }

    [Fact]
    public void Bars_NoBars_SaysNoData() => Assert.Contains("no data", Chart().Texts);
}
