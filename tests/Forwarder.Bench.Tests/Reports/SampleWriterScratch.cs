using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class SampleWriterScratch
{
    private static LatencySeries Series(string label, double baseMs, double slope, double tail)
    {
        var points = new List<(double, double)>();
        for (int i = 0; i <= 70; i++)
        {
            double p = 100 * (1 - Math.Pow(0.5, i / 5.0));
            double q = -Math.Log(1 - p / 100 + 1e-9);
            points.Add((p, baseMs + slope * q + tail * Math.Pow(q / 12, 6)));
        }
        points.Add((100, points[^1].Item2 * 1.3));
        return new LatencySeries(label, points);
    }

    [Fact]
    public void Write()
    {
        Directory.CreateDirectory("/tmp/svg-samples");
        File.WriteAllText("/tmp/svg-samples/latency.svg", SvgCharts.LatencyByPercentile("HTTP latency at 20k req/s, 64 connections",
            [Series("direct", 0.21, 0.05, 0.8), Series("forwarder (epoll)", 0.32, 0.07, 2.5), Series("forwarder (io_uring) <new> & \"fast\"", 0.28, 0.06, 1.4), Series("nginx", 0.35, 0.09, 4)]));
        File.WriteAllText("/tmp/svg-samples/throughput.svg", SvgCharts.Bars("Throughput, HTTP keep-alive, 256 connections", "req/s",
            [new Bar("direct", 152_300, 149_000, 155_800), new Bar("forwarder (epoll)", 98_400, 95_100, 101_200), new Bar("forwarder (io_uring)", 118_700, 117_900, 119_300), new Bar("nginx", 87_250, 80_000, 91_000), new Bar("haproxy", 110_000, 110_000, 110_000)]));
        File.WriteAllText("/tmp/svg-samples/cpu.svg", SvgCharts.Bars("CPU per 1k requests", "ms per 1k requests",
            [new Bar("forwarder", 12.4, 11.9, 13.0), new Bar("nginx", 15.1, 14.2, 16.8)]));
        File.WriteAllText("/tmp/svg-samples/empty.svg", SvgCharts.LatencyByPercentile("Nothing", []));
        File.WriteAllText("/tmp/svg-samples/empty-bars.svg", SvgCharts.Bars("Nothing", "MiB", []));
    }
}
