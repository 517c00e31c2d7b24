using ScottPlot;
using ScottPlot.TickGenerators;

namespace Forwarder.Bench.Reports;

/// <summary>
/// The charts of the perf reports, drawn with ScottPlot and written as SVG: latency by percentile
/// (HdrHistogram's plotter layout), bars with a spread, and values over time, one line per arm.
/// </summary>
internal static class Charts
{
    /// <summary>Okabe-Ito, reordered so that the first colours stay legible as thin lines on white and yellow comes last.</summary>
    internal static readonly string[] Palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

    private const string FontName = "DejaVu Sans";
    private const float LineWidth = 2;
    private const double MinPercentileDecades = 3;
    private const double MaxPercentileDecades = 5;
    private static readonly string[] PercentileLabels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];

    /// <summary>
    /// Latency by percentile as HdrHistogram's plotter draws it: x is log10(1/(1-p)), so 90%, 99%, 99.9%... are
    /// equally spaced and the tail gets as much room as the body; y is linear milliseconds from 0.
    /// </summary>
    public static string LatencyByPercentile(string title, IReadOnlyList<LatencySeries> series, int width = 720, int height = 420)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(series);
        var clean = series
            .Select(s => (s.Label, Points: s.Points.Where(p => double.IsFinite(p.Percentile) && double.IsFinite(p.Milliseconds)).ToList()))
            .Where(s => s.Points.Count > 0)
            .ToList();

        // Only as many decades as the data reaches; 100% (infinitely far out) doesn't count and is clamped instead.
        double reached = clean.SelectMany(s => s.Points).Where(p => p.Percentile < 100).Select(p => PercentileDecades(p.Percentile)).DefaultIfEmpty(0).Max();
        int decades = (int)Math.Clamp(Math.Ceiling(reached - 1e-9), MinPercentileDecades, MaxPercentileDecades);

        using var plot = NewPlot(title, "Percentile", "Latency (ms)");
        for (int i = 0; i < clean.Count; i++)
        {
            var (label, points) = clean[i];
            double[] xs = [.. points.Select(p => Math.Min(PercentileDecades(p.Percentile), decades))];
            double[] ys = [.. points.Select(p => Math.Max(0, p.Milliseconds))];
            AddLine(plot, xs, ys, $"{label} (max {CompactNumber.Format(ys.Max())} ms)", i);
        }

        plot.Axes.Bottom.TickGenerator = new NumericManual(
            [.. Enumerable.Range(0, decades + 1).Select(d => (double)d)], PercentileLabels[..(decades + 1)]);
        double top = clean.SelectMany(s => s.Points).Select(p => p.Milliseconds).Where(m => m > 0).DefaultIfEmpty(1).Max();
        // A little room right of the last decade so that its tick label is not cut.
        plot.Axes.SetLimits(0, decades + 0.12, 0, top * 1.05);
        return Finish(plot, clean.Count, width, height);
    }

    /// <summary>
    /// Horizontal bars (so long labels stay readable) from 0, each labelled with its median and unit, with a
    /// whisker from min to max when the repetitions differ.
    /// </summary>
    public static string Bars(string title, string unit, IReadOnlyList<Bar> bars, int width = 720, int height = 360)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentNullException.ThrowIfNull(bars);
        var clean = bars.Select(Sanitize).ToList();
        using var plot = NewPlot(title, unit, string.Empty);
        height = Math.Max(height, 120 + (clean.Count * 24));

        // The first bar on top, as the report's table lists the arms.
        double Position(int i) => clean.Count - 1 - i;
        var drawn = clean.Select((bar, i) => new ScottPlot.Bar
        {
            Position = Position(i),
            Value = bar.Median,
            FillColor = Colour(i),
            LineWidth = 0,
            Label = $"{CompactNumber.Format(bar.Median)} {unit}".TrimEnd(),
        }).ToList();
        var barPlot = plot.Add.Bars(drawn);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontName = FontName;
        for (int i = 0; i < clean.Count; i++)
        {
            var bar = clean[i];
            if (bar.Min != bar.Max)
            {
                double y = Position(i);
                Whisker(plot, bar.Min, y, bar.Max, y);
                Whisker(plot, bar.Min, y - 0.15, bar.Min, y + 0.15);
                Whisker(plot, bar.Max, y - 0.15, bar.Max, y + 0.15);
            }
        }

        plot.Axes.Left.TickGenerator = new NumericManual([.. clean.Select((_, i) => Position(i))], [.. clean.Select(b => b.Label)]);
        double max = clean.Select(b => b.Max).DefaultIfEmpty(0).Max();

        // Room right of the longest bar for its value label.
        plot.Axes.SetLimits(0, (max > 0 ? max : 1) * 1.25, -0.6, Math.Max(0, clean.Count - 1) + 0.6);
        return Finish(plot, clean.Count, width, height);
    }

    /// <summary>A value over the measured window, one line per series (arm), from 0 on both axes.</summary>
    public static string OverTime(string title, string unit, IReadOnlyList<TimeSeries> series, int width = 720, int height = 360)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentNullException.ThrowIfNull(series);
        var clean = series
            .Select(s => (s.Label, Points: s.Points.Where(p => double.IsFinite(p.Seconds) && double.IsFinite(p.Value)).ToList()))
            .Where(s => s.Points.Count > 0)
            .ToList();
        using var plot = NewPlot(title, "Time (s)", unit);
        for (int i = 0; i < clean.Count; i++)
        {
            var (label, points) = clean[i];
            AddLine(plot, [.. points.Select(p => p.Seconds)], [.. points.Select(p => Math.Max(0, p.Value))], label, i);
        }

        var all = clean.SelectMany(s => s.Points).ToList();
        double right = all.Select(p => p.Seconds).DefaultIfEmpty(1).Max();
        double top = all.Select(p => p.Value).DefaultIfEmpty(1).Max();
        plot.Axes.SetLimits(0, right > 0 ? right : 1, 0, (top > 0 ? top : 1) * 1.05);
        return Finish(plot, clean.Count, width, height);
    }

    /// <summary>log10(1/(1-p)) for a percentile p in 0..100; 100% is +∞, which callers clamp.</summary>
    internal static double PercentileDecades(double percentile) =>
        percentile >= 100 ? double.PositiveInfinity : Math.Log10(100 / (100 - Math.Max(0, percentile)));

    private static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Font.Set(FontName);
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        return plot;
    }

    private static void AddLine(Plot plot, double[] xs, double[] ys, string label, int index)
    {
        var line = plot.Add.ScatterLine(xs, ys, Colour(index));
        line.LineWidth = LineWidth;
        line.LegendText = label;

        // A one-point line draws nothing; a marker keeps the series visible.
        line.MarkerSize = xs.Length == 1 ? 7 : 0;
    }

    private static void Whisker(Plot plot, double x1, double y1, double x2, double y2)
    {
        var line = plot.Add.Line(x1, y1, x2, y2);
        line.LineColor = Color.FromHex("#222222");
        line.LineWidth = 1.5f;
        line.MarkerSize = 0;
    }

    private static string Finish(Plot plot, int drawn, int width, int height)
    {
        if (drawn == 0)
        {
            plot.Add.Annotation("no data", Alignment.MiddleCenter);
        }
        else if (plot.GetPlottables().Any(p => p.LegendItems.Any(item => !string.IsNullOrEmpty(item.LabelText))))
        {
            // Under the plot, so that no curve is hidden behind it.
            plot.ShowLegend(Edge.Bottom);
        }

        return plot.GetSvgXml(width, height);
    }

    private static Color Colour(int index) => Color.FromHex(Palette[index % Palette.Length]);

    /// <summary>Values a chart can draw: finite, not below the 0 the axis starts at, with Min ≤ Median ≤ Max.</summary>
    private static Bar Sanitize(Bar bar)
    {
        double median = double.IsFinite(bar.Median) ? Math.Max(0, bar.Median) : 0;
        double min = double.IsFinite(bar.Min) ? Math.Max(0, bar.Min) : median;
        double max = double.IsFinite(bar.Max) ? Math.Max(0, bar.Max) : median;
        return bar with { Median = median, Min = Math.Min(median, Math.Min(min, max)), Max = Math.Max(median, Math.Max(min, max)) };
    }
}
