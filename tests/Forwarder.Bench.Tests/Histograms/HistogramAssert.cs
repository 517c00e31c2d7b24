using HdrHistogram;

namespace Forwarder.Bench.Tests.Histograms;

internal static class HistogramAssert
{
    /// <summary>Same layout and the same count in every bucket.</summary>
    public static void SameCounts(HistogramBase expected, HistogramBase actual)
    {
        Assert.Equal(expected.TotalCount, actual.TotalCount);
        Assert.Equal(expected.BucketCount, actual.BucketCount);
        Assert.Equal(expected.SubBucketCount, actual.SubBucketCount);
        Assert.Equal(
            expected.RecordedValues().Select(v => (v.ValueIteratedTo, v.CountAtValueIteratedTo)).ToList(),
            actual.RecordedValues().Select(v => (v.ValueIteratedTo, v.CountAtValueIteratedTo)).ToList());
    }
}
