namespace Forwarder.Bench.Reports;

/// <summary>Self-contained SVG charts for benchmark reports (no plotting package is available to the harness).</summary>
internal static class SvgCharts
{
    /// <summary>Okabe-Ito, reordered so that the first colours stay legible as thin lines on white and yellow comes last.</summary>
    internal static readonly string[] Palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

    private const string GridColour = "#e6e6e6";
    private const string AxisColour = "#888888";
    private const string MutedText = "#555555";
    private const double Pad = 16;
    private const double TitleFontSize = 16;
    private const double TitleHeight = 40;
    private const double TickGap = 6;
    private const double LegendRowHeight = 18;
    private const double LegendSwatch = 18;
    private const double BottomAxisHeight = TickGap + SvgWriter.FontSize + TickGap * 2 + SvgWriter.FontSize + Pad / 2;

    // Gridlines no closer than this many pixels, so tick labels never crowd.
    private const double MinTickSpacing = 48;

    // Below these the chart grows taller rather than squash curves or overlap bar labels.
    private const double MinPlotHeight = 160;
    private const double MinBarSlot = 20;
    private const double MinPercentileDecades = 3;
    private const double MaxPercentileDecades = 5;
    private static readonly string[] PercentileLabels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];

    /// <summary>
    /// Latency by percentile as HdrHistogram's plotter draws it: x is log10(1/(1-p)), so 90%, 99%, 99.9%... are
    /// equally spaced and the tail gets as much room as the body; y is linear milliseconds from 0.
    /// </summary>
    public static string LatencyByPercentile(string title, IReadOnlyList<LatencySeries> series, double width = 720, double height = 420)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(series);
        var clean = series
            .Select(s => (s.Label, Points: s.Points.Where(p => double.IsFinite(p.Percentile) && double.IsFinite(p.Milliseconds)).ToList()))
            .Where(s => s.Points.Count > 0)
            .ToList();

        // Only as many decades as the data reaches; 100% (infinitely far out) doesn't count and is clamped instead.
        double reached = clean.SelectMany(s => s.Points).Where(p => p.Percentile < 100).Select(p => PercentileDecades(p.Percentile)).DefaultIfEmpty(0).Max();
        double decades = Math.Clamp(Math.Ceiling(reached - 1e-9), MinPercentileDecades, MaxPercentileDecades);
        var legend = clean.Select(s => $"{s.Label} (max {CompactNumber.Format(s.Points.Max(p => p.Milliseconds))} ms)").ToList();
        var legendPlaces = LegendGrid(legend, width);
        double top = TitleHeight + (legendPlaces.Count == 0 ? 0 : legendPlaces[^1].Y - TitleHeight + LegendRowHeight);
        height = Math.Max(height, top + MinPlotHeight + BottomAxisHeight);
        double bottom = height - BottomAxisHeight;
        var yScale = NiceScale.For(clean.SelectMany(s => s.Points).Select(p => p.Milliseconds).DefaultIfEmpty(0).Max(), StepsFor(bottom - top));
        double left = Pad + SvgWriter.FontSize + TickGap * 2 + yScale.Ticks.Max(t => SvgWriter.TextWidth(CompactNumber.Format(t))) + TickGap;
        double right = width - Pad - SvgWriter.TextWidth(PercentileLabels[(int)decades]) / 2;
        double X(double percentile) => left + (right - left) * Math.Min(PercentileDecades(percentile), decades) / decades;
        double Y(double milliseconds) => bottom - (bottom - top) * Math.Max(0, milliseconds) / yScale.Top;

        var svg = new SvgWriter(width, height, title);
        svg.Text(Pad, TitleHeight / 2 + 2, title, "title", fontSize: TitleFontSize, bold: true);
        foreach (double tick in yScale.Ticks)
        {
            svg.Line(left, Y(tick), right, Y(tick), GridColour, "y-grid");
            svg.Text(left - TickGap, Y(tick), CompactNumber.Format(tick), "y-tick", "end", fill: MutedText);
        }

        for (int decade = 0; decade <= decades; decade++)
        {
            double x = left + (right - left) * decade / decades;
            svg.Line(x, top, x, bottom, GridColour, "x-grid");
            svg.Text(x, bottom + TickGap + SvgWriter.FontSize / 2, PercentileLabels[decade], "x-tick", "middle", fill: MutedText);
        }

        svg.Line(left, bottom, right, bottom, AxisColour, "axis");
        svg.Line(left, top, left, bottom, AxisColour, "axis");
        svg.Text((left + right) / 2, height - Pad / 2 - SvgWriter.FontSize / 2, "Percentile", "axis-title", "middle");
        svg.Text(Pad + SvgWriter.FontSize / 2, (top + bottom) / 2, "Latency (ms)", "axis-title", "middle", rotate: -90);

        for (int i = 0; i < clean.Count; i++)
        {
            string colour = Palette[i % Palette.Length];
            svg.Polyline(clean[i].Points.Select(p => (X(p.Percentile), Y(p.Milliseconds))), colour, "series", legend[i]);
            if (clean[i].Points.Count == 1)
            {
                // A one-point polyline draws nothing; a dot keeps the series visible.
                svg.Circle(X(clean[i].Points[0].Percentile), Y(clean[i].Points[0].Milliseconds), 3.5, colour, "series-dot");
            }

            var (x, y) = legendPlaces[i];
            svg.Line(x, y, x + LegendSwatch, y, colour, "legend-swatch", 3);
            svg.Text(x + LegendSwatch + TickGap, y, legend[i], "legend");
        }

        if (clean.Count == 0)
        {
            NoData(svg, (left + right) / 2, (top + bottom) / 2);
        }

        return svg.ToString();
    }

    /// <summary>
    /// Horizontal bars (so long labels stay readable) from 0, each labelled with its median and unit, with a
    /// whisker from min to max when the repetitions differ.
    /// </summary>
    public static string Bars(string title, string unit, IReadOnlyList<Bar> bars, double width = 720, double height = 360)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentNullException.ThrowIfNull(bars);
        var clean = bars.Select(Sanitize).ToList();
        var valueLabels = clean.Select(b => $"{CompactNumber.Format(b.Median)} {unit}".TrimEnd()).ToList();

        // Labels get up to 40% of the width; longer ones are shortened with an ellipsis and keep the full text as a tooltip.
        int maxLabelChars = Math.Max(2, (int)(width * 0.4 / SvgWriter.TextWidth("x")));
        var labels = clean.Select(b => b.Label.Length <= maxLabelChars ? b.Label : string.Concat(b.Label.AsSpan(0, maxLabelChars - 1), "…")).ToList();
        double left = Pad + labels.Select(l => SvgWriter.TextWidth(l)).DefaultIfEmpty(0).Max() + TickGap * 2;
        // The right margin fits the longest value label, and at least half of a tick label such as "150k".
        double right = width - Pad - Math.Max(SvgWriter.TextWidth("150k") / 2, valueLabels.Select(l => SvgWriter.TextWidth(l) + TickGap).DefaultIfEmpty(0).Max());
        var scale = NiceScale.For(clean.Select(b => b.Max).DefaultIfEmpty(0).Max(), StepsFor(right - left));
        const double top = TitleHeight;
        height = Math.Max(height, top + clean.Count * MinBarSlot + BottomAxisHeight);
        double bottom = height - BottomAxisHeight;
        double X(double value) => left + (right - left) * value / scale.Top;

        var svg = new SvgWriter(width, height, title);
        svg.Text(Pad, TitleHeight / 2 + 2, title, "title", fontSize: TitleFontSize, bold: true);
        foreach (double tick in scale.Ticks)
        {
            svg.Line(X(tick), top, X(tick), bottom, GridColour, "x-grid");
            svg.Text(X(tick), bottom + TickGap + SvgWriter.FontSize / 2, CompactNumber.Format(tick), "x-tick", "middle", fill: MutedText);
        }

        svg.Text((left + right) / 2, height - Pad / 2 - SvgWriter.FontSize / 2, unit, "axis-title", "middle");
        double slot = (bottom - top) / Math.Max(1, clean.Count);
        double barHeight = Math.Min(slot * 0.6, 40);
        for (int i = 0; i < clean.Count; i++)
        {
            Bar bar = clean[i];
            double middle = top + slot * (i + 0.5);
            svg.Rect(left, middle - barHeight / 2, X(bar.Median) - left, barHeight, Palette[i % Palette.Length], "bar");
            svg.Text(left - TickGap, middle, labels[i], "bar-label", "end", tooltip: labels[i] == bar.Label ? null : bar.Label);
            if (bar.Min != bar.Max)
            {
                double cap = barHeight / 4;
                svg.Line(X(bar.Min), middle, X(bar.Max), middle, "#222222", "whisker", 1.5);
                svg.Line(X(bar.Min), middle - cap, X(bar.Min), middle + cap, "#222222", "whisker-cap", 1.5);
                svg.Line(X(bar.Max), middle - cap, X(bar.Max), middle + cap, "#222222", "whisker-cap", 1.5);
            }

            svg.Text(X(bar.Max) + TickGap, middle, valueLabels[i], "value");
        }

        svg.Line(left, top, left, bottom, AxisColour, "axis");
        if (clean.Count == 0)
        {
            NoData(svg, (left + right) / 2, (top + bottom) / 2);
        }

        return svg.ToString();
    }

    /// <summary>log10(1/(1-p)) for a percentile p in 0..100; 100% is +∞, which callers clamp.</summary>
    internal static double PercentileDecades(double percentile) =>
        percentile >= 100 ? double.PositiveInfinity : Math.Log10(100 / (100 - Math.Max(0, percentile)));

    private static int StepsFor(double axisLength) => Math.Clamp((int)(axisLength / MinTickSpacing), 2, 10);

    /// <summary>Legend entries in a table under the title, with as many columns as fit the width.</summary>
    private static List<(double X, double Y)> LegendGrid(List<string> entries, double width)
    {
        var entryWidths = entries.Select(e => LegendSwatch + TickGap + SvgWriter.TextWidth(e) + Pad).ToList();
        for (int columns = entries.Count; ; columns--)
        {
            var columnWidths = Enumerable.Range(0, columns).Select(c => entryWidths.Where((_, i) => i % columns == c).Max()).ToList();
            if (columns <= 1 || Pad + columnWidths.Sum() <= width)
            {
                return entries.Select((_, i) => (
                    Pad + columnWidths.Take(i % columns).Sum(),
                    TitleHeight + LegendRowHeight * (i / columns + 0.5))).ToList();
            }
        }
    }

    /// <summary>Values a chart can draw: finite, not below the 0 the axis starts at, with Min ≤ Median ≤ Max.</summary>
    private static Bar Sanitize(Bar bar)
    {
        double median = double.IsFinite(bar.Median) ? Math.Max(0, bar.Median) : 0;
        double min = double.IsFinite(bar.Min) ? Math.Max(0, bar.Min) : median;
        double max = double.IsFinite(bar.Max) ? Math.Max(0, bar.Max) : median;
        return bar with { Median = median, Min = Math.Min(median, Math.Min(min, max)), Max = Math.Max(median, Math.Max(min, max)) };
    }

    private static void NoData(SvgWriter svg, double x, double y) => svg.Text(x, y, "no data", "no-data", "middle", 14, MutedText);
}
