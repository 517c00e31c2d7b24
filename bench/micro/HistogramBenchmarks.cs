using BenchmarkDotNet.Attributes;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Scenarios;
using HdrHistogram;

namespace Forwarder.Bench.Micro;

/// <summary>
/// The bench harness's histogram as its workers use it: microseconds from 1 µs to an hour at 3
/// significant digits (<see cref="InvocationStats.NewHistogram"/>). Recording is on every response's
/// path; a percentile is read once per report. Commit 5331589 ran these against the hand-written
/// histogram the package replaced (perf-reports/hdr-library).
/// </summary>
[MemoryDiagnoser]
public class HistogramBenchmarks
{
    /// <summary>The expected interval of an open-loop run at 1,000 req/s, in microseconds.</summary>
    private const long ExpectedIntervalMicroseconds = 1_000;

    private readonly long[] _values = new long[4096];
    private LongHistogram _recording = null!;
    private LongHistogram _million = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        // Latencies of 100-900 µs, and every 64th a 5 ms stall: with the 1 ms expected interval,
        // RecordValueWithExpectedInterval records 1 + 4/64 = 1.0625 values per call on average.
        var random = new Random(1);
        for (var i = 0; i < _values.Length; i++)
        {
            _values[i] = i % 64 == 63 ? 5_000 : random.Next(100, 900);
        }

        _recording = InvocationStats.NewHistogram();
        _million = InvocationStats.NewHistogram();
        for (var i = 0; i < 1_000_000; i++)
        {
            _million.RecordValue(_values[i & 4095]);
        }
    }

    [Benchmark]
    public void RecordValue() => _recording.RecordValue(_values[_next++ & 4095]);

    [Benchmark]
    public void RecordValueWithExpectedInterval() => _recording.RecordValueWithExpectedInterval(_values[_next++ & 4095], ExpectedIntervalMicroseconds);

    /// <summary>The p99 of 1M recorded values, Java's way (our adapter, over the package's iterator).</summary>
    [Benchmark]
    public long ValueAt99() => _million.ValueAt(99);

    /// <summary>The package's own p99: a scan of the counts up to the bucket holding it.</summary>
    [Benchmark]
    public long PackageGetValueAtPercentile99() => _million.GetValueAtPercentile(99);
}
