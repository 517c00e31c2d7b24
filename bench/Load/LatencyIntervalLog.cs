using Forwarder.Bench.Histograms;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>
/// <c>bench load --hlog</c>: the corrected latency of each second of the measured window as an
/// HdrHistogram interval log (format 1.3, V2-encoded histograms, values in microseconds), the file
/// HdrHistogram's HistogramLogProcessor and plotters read. Flushed every interval, so it can be
/// followed while the run goes.
/// </summary>
internal sealed class LatencyIntervalLog : IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    // The Interval_Max column is in milliseconds, as in Java's logs of nanosecond histograms.
    private const double MicrosecondsPerMillisecond = 1000.0;

    private readonly StreamWriter _file;
    private readonly HistogramLogWriter _log;
    private readonly string _run;
    private bool _started;

    public LatencyIntervalLog(string path, LoadOptions options)
    {
        _file = new StreamWriter(path);
        _log = new HistogramLogWriter(_file);
        _run = $"{options.Target}, {(options.OpenLoop ? $"open loop at {options.Rate:0.##} req/s" : "closed loop")}, {options.Connections} connections";
    }

    public void Write(LatencyInterval interval)
    {
        if (!_started)
        {
            // The start time is known once the run has laid out its plan: the header waits for the first interval.
            _started = true;
            var start = interval.MeasureStartedAt.ToUnixTimeMilliseconds() / 1000.0;
            _log.WriteComment($"[Logged with bench load: {_run}]");
            _log.WriteComment("[Values: latency from each request's intended start (corrected for coordinated omission, as the report) in microseconds; Interval_Max in milliseconds]");
            _log.WriteLogFormatVersion();
            _log.WriteStartTime(start);
            _log.WriteBaseTime(start);
            _log.WriteLegend();
        }

        _log.WriteHistogram(interval.Latency, interval.Start.TotalSeconds, interval.Length.TotalSeconds, MicrosecondsPerMillisecond);
        _file.Flush();
    }

    public ValueTask DisposeAsync() => _file.DisposeAsync();
}
