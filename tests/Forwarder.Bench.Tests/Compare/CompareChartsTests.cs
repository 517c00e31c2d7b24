using Forwarder.Bench.Compare;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Tests.Compare;

public sealed class CompareChartsTests
{
    [Fact]
    public void Throughput_CompletionsPerSecond_WholeSecondsAtTheirEnd()
    {
        var totals = new InvocationStats();
        totals.CountCompleted(0, 100);
        totals.CountCompleted(1, 120);
        totals.CountCompleted(2, 7);
        var run = Run(new ScenarioStats("load", TimeSpan.FromSeconds(2.5), null, TimeSpan.Zero, totals, []), null);

        var series = CompareCharts.Throughput(run);

        // The third second was cut short by the end of a 2.5 s window: its 7 would read as a collapse.
        Assert.Equal([(1.0, 100.0), (2.0, 120.0)], series.Points);
        Assert.Equal("forwarder", series.Label);
    }

    [Fact]
    public void Cpu_Samples_PercentOfOneCoreOverSpansOfASecond()
    {
        ResourceSample[] samples = [new(0.5, 0.25, 1), new(1.0, 0.5, 1), new(1.5, 0.6, 1), new(2.0, 0.7, 1), new(3.0, 1.7, 1)];
        var run = Run(new ScenarioStats("load", TimeSpan.FromSeconds(3), null, TimeSpan.Zero, new InvocationStats(), []), samples);

        var points = CompareCharts.Cpu(run).Points;

        Assert.Equal(3, points.Count);
        Assert.Equal((1.0, 50.0), (points[0].Seconds, Math.Round(points[0].Value, 9)));
        Assert.Equal((2.0, 20.0), (points[1].Seconds, Math.Round(points[1].Value, 9)));
        Assert.Equal((3.0, 100.0), (points[2].Seconds, Math.Round(points[2].Value, 9)));
    }

    [Fact]
    public void Memory_Samples_MebibytesAtEachSample()
    {
        ResourceSample[] samples = [new(0.1, 0, 1048576), new(0.2, 0, 3 * 1048576)];
        var run = Run(new ScenarioStats("load", TimeSpan.FromSeconds(1), null, TimeSpan.Zero, new InvocationStats(), []), samples);

        Assert.Equal([(0.1, 1.0), (0.2, 3.0)], CompareCharts.Memory(run).Points);
    }

    [Fact]
    public void Memory_Direct_NoSamplesNoPoints()
    {
        var run = Run(new ScenarioStats("load", TimeSpan.FromSeconds(1), null, TimeSpan.Zero, new InvocationStats(), []), null);

        Assert.Empty(CompareCharts.Memory(run).Points);
        Assert.Empty(CompareCharts.Cpu(run).Points);
    }

    private static ArmRun Run(ScenarioStats stats, IReadOnlyList<ResourceSample>? samples) =>
        new("forwarder", 1000, 1, stats, 1, 1, 1, samples);
}
