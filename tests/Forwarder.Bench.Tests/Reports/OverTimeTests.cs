using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class OverTimeTests
{
    [Fact]
    public void OverTime_TwoArms_ValidSvgWithLegendEntryAndLinePerArm()
    {
        var chart = new SvgTestDocument(Charts.OverTime("CPU over time", "% of one core", [
            new TimeSeries("forwarder", [.. Enumerable.Range(1, 10).Select(s => (s * 1.0, 50.0 + s))]),
            new TimeSeries("nginx", [.. Enumerable.Range(1, 10).Select(s => (s * 1.0, 70.0 - s))]),
        ]));

        Assert.Contains("CPU over time", chart.Texts);
        Assert.Contains("Time (s)", chart.Texts);
        Assert.Contains("% of one core", chart.Texts);
        Assert.Contains("forwarder", chart.Texts);
        Assert.Contains("nginx", chart.Texts);
        Assert.Equal(10, chart.Strokes(Charts.Palette[0]).Max(s => s.Count));
        Assert.Equal(10, chart.Strokes(Charts.Palette[1]).Max(s => s.Count));

        // Later is further right.
        var line = chart.Strokes(Charts.Palette[0]).First(s => s.Count == 10);
        Assert.True(line[9].X > line[0].X);
    }

    [Fact]
    public void OverTime_NoPoints_SaysNoData()
    {
        var chart = new SvgTestDocument(Charts.OverTime("t", "MiB", [new TimeSeries("empty", [(double.NaN, 1)])]));

        Assert.Contains("no data", chart.Texts);
    }
}
