namespace Forwarder.Bench.Reports;

/// <summary>One series of a latency-by-percentile chart: label and points (percentile 0..100 inclusive, latency in milliseconds).</summary>
internal sealed record LatencySeries(string Label, IReadOnlyList<(double Percentile, double Milliseconds)> Points);

/// <summary>One bar: label, the median value, and the spread (min and max across repetitions) drawn as a whisker.</summary>
internal sealed record Bar(string Label, double Median, double Min, double Max);

/// <summary>One series of a chart over time: label and points (seconds since the measured window began, value).</summary>
internal sealed record TimeSeries(string Label, IReadOnlyList<(double Seconds, double Value)> Points);
