using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class CompactNumberTests
{
    [Theory]
    [InlineData(0, "0")]
    [InlineData(-0.0, "0")]
    [InlineData(0.85, "0.85")]
    [InlineData(0.8512, "0.851")]
    [InlineData(0.0012345, "0.00123")]
    [InlineData(0.2, "0.2")]
    [InlineData(0.6000000000000001, "0.6")]
    [InlineData(12.34, "12.3")]
    [InlineData(999, "999")]
    [InlineData(999.6, "1k")]
    [InlineData(1_200, "1.2k")]
    [InlineData(1_234, "1.23k")]
    [InlineData(15_000, "15k")]
    [InlineData(15_432, "15.4k")]
    [InlineData(154_321, "154k")]
    [InlineData(2_500_000, "2.5M")]
    [InlineData(3_210_000_000, "3.21G")]
    [InlineData(-1_500, "-1.5k")]
    public void Format_Value_ThreeSignificantDigitsWithSuffix(double value, string expected) =>
        Assert.Equal(expected, CompactNumber.Format(value));

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void Format_NonFinite_SaysNotAvailable(double value) => Assert.Equal("n/a", CompactNumber.Format(value));
}
