using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>How often a run hands over the corrected latency of the interval just ended, and to what.</summary>
/// <param name="Every">The interval's length.</param>
/// <param name="Report">Called in order, from the runner's sampling task; it may keep the histogram.</param>
internal sealed record LatencyIntervals(TimeSpan Every, Action<LatencyInterval> Report);

/// <summary>
/// The corrected latencies (µs) a run recorded in one interval of its measured window: those of
/// invocations that ended in it, and in the last interval those the run gave up on.
/// </summary>
/// <param name="MeasureStartedAt">Wall-clock time the measured window began; the same for every interval of a run.</param>
/// <param name="Start">The interval's start, from the measured window's.</param>
/// <param name="Length">The interval's length (the last one may be shorter).</param>
/// <param name="Latency">The interval's corrected latencies, in microseconds.</param>
internal sealed record LatencyInterval(DateTimeOffset MeasureStartedAt, TimeSpan Start, TimeSpan Length, HistogramBase Latency);
