using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class NiceScaleTests
{
    [Theory]
    [InlineData(0.87, 5, 0.2, 1.0)]
    [InlineData(13_400, 5, 5_000, 15_000)]
    [InlineData(1.0, 5, 0.2, 1.0)]
    [InlineData(3.04, 5, 1, 4)]
    [InlineData(7, 5, 2, 8)]
    [InlineData(100, 5, 20, 100)]
    [InlineData(0.001, 5, 0.0002, 0.001)]
    [InlineData(155_800, 9, 20_000, 160_000)]
    [InlineData(155_800, 2, 100_000, 200_000)]
    public void For_Max_RoundsUpToNiceStep(double max, int maxSteps, double step, double top)
    {
        var scale = NiceScale.For(max, maxSteps);

        Assert.Equal(step, scale.Step, step * 1e-9);
        Assert.Equal(top, scale.Top, top * 1e-9);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void For_NothingToShow_GivesZeroToOne(double max)
    {
        var scale = NiceScale.For(max);

        Assert.Equal(1.0, scale.Top, 1e-12);
        Assert.Equal(0.2, scale.Step, 1e-12);
    }

    [Fact]
    public void For_AnyMax_CoversItInOneTwoFiveStepsWithinTheLimit()
    {
        for (double max = 0.0013; max < 1e7; max *= 1.37)
        {
            for (int maxSteps = 2; maxSteps <= 10; maxSteps++)
            {
                var scale = NiceScale.For(max, maxSteps);
                double mantissa = scale.Step / Math.Pow(10, Math.Floor(Math.Log10(scale.Step) + 1e-9));

                Assert.True(scale.Top >= max * (1 - 1e-9), $"{max} by {maxSteps}: top {scale.Top}");
                Assert.InRange(scale.Count, 1, maxSteps);
                Assert.Contains(Math.Round(mantissa, 6), new[] { 1.0, 2.0, 5.0 });
            }
        }
    }

    [Fact]
    public void Ticks_FractionalStep_RunFromZeroToTop()
    {
        var ticks = NiceScale.For(0.87).Ticks.ToList();

        Assert.Equal(6, ticks.Count);
        Assert.Equal(0, ticks[0]);
        Assert.Equal(1.0, ticks[^1], 1e-12);
    }
}
