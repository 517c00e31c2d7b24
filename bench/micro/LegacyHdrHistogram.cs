using System.Numerics;
using System.Runtime.CompilerServices;

namespace Forwarder.Bench.Micro;

/// <summary>
/// A High Dynamic Range histogram of non-negative integer values with HdrHistogram's bucket layout and
/// arithmetic (org.HdrHistogram.Histogram in the Java reference), so counts, percentiles, statistics and
/// encodings agree with histograms recorded by the reference implementations.
/// </summary>
/// <remarks>
/// Values are grouped into buckets of <see cref="SubBucketCount"/> sub-buckets; each bucket doubles the
/// width of its sub-buckets, keeping <see cref="NumberOfSignificantValueDigits"/> decimal digits of precision
/// across the whole range. Not thread-safe: each recorder owns a histogram and results are merged with
/// <see cref="Add"/>.
/// </remarks>
internal sealed class LegacyHdrHistogram
{
    private readonly long[] _counts;
    private readonly int _unitMagnitude;
    private readonly long _unitMagnitudeMask;
    private readonly int _subBucketHalfCountMagnitude;
    private readonly int _subBucketHalfCount;
    private readonly long _subBucketMask;
    private readonly int _leadingZeroCountBase;
    private long _totalCount;

    // Like Java's maxValue / minNonZeroValue: kept as the highest (lowest) unit-equivalent value seen,
    // so recording never has to look up a bucket boundary.
    private long _maxValue;
    private long _minNonZeroValue = long.MaxValue;

    public LegacyHdrHistogram(long highestTrackableValue, int numberOfSignificantValueDigits)
        : this(1, highestTrackableValue, numberOfSignificantValueDigits)
    {
    }

    public LegacyHdrHistogram(long lowestDiscernibleValue, long highestTrackableValue, int numberOfSignificantValueDigits)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(lowestDiscernibleValue, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lowestDiscernibleValue, long.MaxValue / 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(highestTrackableValue, 2 * lowestDiscernibleValue);
        ArgumentOutOfRangeException.ThrowIfNegative(numberOfSignificantValueDigits);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(numberOfSignificantValueDigits, 5);

        // Java derives the unit magnitude with a floating-point log2; doing the same keeps huge lowest values
        // (2^53 - 1 rounds up to 2^53) on the same bucket layout, which encoded histograms depend on.
        _unitMagnitude = (int)(Math.Log(lowestDiscernibleValue) / Math.Log(2));
        _unitMagnitudeMask = (1L << _unitMagnitude) - 1;

        // Unit resolution is needed up to 2 * 10^digits (+/-1 at 1000 allows +/-2 only from 2000 on), rounded
        // up to a power of two for direct indexing.
        long largestValueWithSingleUnitResolution = 2 * (long)Math.Pow(10, numberOfSignificantValueDigits);
        int subBucketCountMagnitude = 64 - BitOperations.LeadingZeroCount((ulong)largestValueWithSingleUnitResolution - 1);
        if (subBucketCountMagnitude + _unitMagnitude > 62)
        {
            throw new ArgumentException(
                "Cannot represent numberOfSignificantValueDigits worth of values beyond lowestDiscernibleValue.",
                nameof(numberOfSignificantValueDigits));
        }

        _subBucketHalfCountMagnitude = subBucketCountMagnitude - 1;
        SubBucketCount = 1 << subBucketCountMagnitude;
        _subBucketHalfCount = SubBucketCount / 2;
        _subBucketMask = ((long)SubBucketCount - 1) << _unitMagnitude;
        _leadingZeroCountBase = 64 - _unitMagnitude - subBucketCountMagnitude;

        LowestDiscernibleValue = lowestDiscernibleValue;
        HighestTrackableValue = highestTrackableValue;
        NumberOfSignificantValueDigits = numberOfSignificantValueDigits;
        BucketCount = BucketsNeededToCover(highestTrackableValue);
        _counts = new long[(BucketCount + 1) * _subBucketHalfCount];
    }

    public long LowestDiscernibleValue { get; }

    public long HighestTrackableValue { get; }

    public int NumberOfSignificantValueDigits { get; }

    public long TotalCount => _totalCount;

    /// <summary>Milliseconds since the epoch, as in Java; <see cref="long.MaxValue"/> until set.</summary>
    public long StartTimeStamp { get; set; } = long.MaxValue;

    /// <summary>Milliseconds since the epoch, as in Java; 0 until set.</summary>
    public long EndTimeStamp { get; set; }

    public string? Tag { get; set; }

    internal int BucketCount { get; }

    internal int SubBucketCount { get; }

    internal int CountsArrayLength => _counts.Length;

    /// <summary>The largest value the counts array can hold (at least <see cref="HighestTrackableValue"/>).</summary>
    private long HighestRecordableValue => HighestEquivalentValue(ValueFromIndex(_counts.Length - 1));

    /// <summary>Counts one occurrence of <paramref name="value"/>; allocation-free.</summary>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="value"/> is negative or beyond what the top bucket holds; that bucket ends at or above
    /// <see cref="HighestTrackableValue"/> (Java accepts the same values).
    /// </exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void RecordValue(long value)
    {
        long[] counts = _counts;
        int index = CountsArrayIndex(value);
        // Negative values index past the end too: their bucket index is one above the largest bucket.
        if ((uint)index >= (uint)counts.Length)
        {
            ThrowValueOutOfRange(value);
        }

        counts[index]++;
        _totalCount++;
        UpdateMinAndMax(value);
    }

    public void RecordValueWithCount(long value, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long[] counts = _counts;
        int index = CountsArrayIndex(value);
        if ((uint)index >= (uint)counts.Length)
        {
            ThrowValueOutOfRange(value);
        }

        counts[index] += count;
        _totalCount += count;
        UpdateMinAndMax(value);
    }

    /// <summary>
    /// Records <paramref name="value"/> and, when it exceeds the expected interval between samples, the
    /// samples a stalled load generator would have taken meanwhile (value - interval, value - 2 * interval,
    /// ... down to the interval): at-recording coordinated-omission correction.
    /// </summary>
    public void RecordValueWithExpectedInterval(long value, long expectedIntervalBetweenValueSamples)
    {
        RecordValue(value);
        if (expectedIntervalBetweenValueSamples <= 0)
        {
            return;
        }

        for (long missing = value - expectedIntervalBetweenValueSamples;
             missing >= expectedIntervalBetweenValueSamples;
             missing -= expectedIntervalBetweenValueSamples)
        {
            RecordValue(missing);
        }
    }

    /// <summary>Adds every count of <paramref name="other"/>, whose layout may differ as long as its values fit.</summary>
    public void Add(LegacyHdrHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.GetMaxValue() > HighestRecordableValue)
        {
            throw new ArgumentOutOfRangeException(
                nameof(other), "The other histogram includes values that do not fit in this histogram's range.");
        }

        long[] source = other._counts;
        if (BucketCount == other.BucketCount && SubBucketCount == other.SubBucketCount &&
            _unitMagnitude == other._unitMagnitude)
        {
            long[] target = _counts;
            long added = 0;
            for (int i = 0; i < source.Length; i++)
            {
                long count = source[i];
                if (count != 0)
                {
                    target[i] += count;
                    added += count;
                }
            }

            _totalCount += added;
            if (other._totalCount != 0)
            {
                UpdateMinAndMax(other.GetMaxValue());
            }

            if (other._minNonZeroValue != long.MaxValue)
            {
                UpdateMinAndMax(other.GetMinNonZeroValue());
            }
        }
        else
        {
            for (int i = 0; i < source.Length; i++)
            {
                if (source[i] != 0)
                {
                    RecordValueWithCount(other.ValueFromIndex(i), source[i]);
                }
            }
        }

        StartTimeStamp = Math.Min(StartTimeStamp, other.StartTimeStamp);
        EndTimeStamp = Math.Max(EndTimeStamp, other.EndTimeStamp);
    }

    public LegacyHdrHistogram Copy()
    {
        LegacyHdrHistogram copy = EmptyCopy();
        copy.Add(this);
        return copy;
    }

    /// <summary>
    /// A copy with post-recording coordinated-omission correction: each recorded value (taken as the highest
    /// value of its bucket, as in Java) is re-recorded with <see cref="RecordValueWithExpectedInterval"/>.
    /// Use either this or at-recording correction on a data set, not both.
    /// </summary>
    public LegacyHdrHistogram CopyCorrectedForCoordinatedOmission(long expectedIntervalBetweenValueSamples)
    {
        LegacyHdrHistogram copy = EmptyCopy();
        for (int i = 0; i < _counts.Length; i++)
        {
            long count = _counts[i];
            if (count == 0)
            {
                continue;
            }

            long value = HighestEquivalentValue(ValueFromIndex(i));
            copy.RecordValueWithCount(value, count);
            if (expectedIntervalBetweenValueSamples <= 0)
            {
                continue;
            }

            for (long missing = value - expectedIntervalBetweenValueSamples;
                 missing >= expectedIntervalBetweenValueSamples;
                 missing -= expectedIntervalBetweenValueSamples)
            {
                copy.RecordValueWithCount(missing, count);
            }
        }

        return copy;
    }

    public void Reset()
    {
        Array.Clear(_counts);
        _totalCount = 0;
        _maxValue = 0;
        _minNonZeroValue = long.MaxValue;
        StartTimeStamp = long.MaxValue;
        EndTimeStamp = 0;
        Tag = null;
    }

    /// <summary>
    /// The value below which <paramref name="percentile"/> percent of the counts fall, reported as the
    /// highest value equivalent to the bucket reaching that count (the lowest one for the 0th percentile).
    /// </summary>
    public long GetValueAtPercentile(double percentile)
    {
        // Stepping just below the requested level keeps e.g. the 50th percentile of {1, 2} at 1, as in Java.
        double requested = Math.Min(Math.Max(Math.BitDecrement(percentile), 0.0), 100.0);
        long countAtPercentile = Math.Max((long)Math.Ceiling(requested * _totalCount / 100.0), 1);
        long totalToIndex = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            totalToIndex += _counts[i];
            if (totalToIndex >= countAtPercentile)
            {
                long valueAtIndex = ValueFromIndex(i);
                return percentile == 0.0 ? LowestEquivalentValue(valueAtIndex) : HighestEquivalentValue(valueAtIndex);
            }
        }

        return 0;
    }

    /// <summary>Mean of the recorded values, each taken at the middle of its bucket like Java does.</summary>
    public double GetMean()
    {
        if (_totalCount == 0)
        {
            return 0.0;
        }

        double totalValue = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            long count = _counts[i];
            if (count != 0)
            {
                totalValue += MedianEquivalentValue(ValueFromIndex(i)) * (double)count;
            }
        }

        return totalValue / _totalCount;
    }

    public double GetStdDeviation()
    {
        if (_totalCount == 0)
        {
            return 0.0;
        }

        double mean = GetMean();
        double squaredDeviations = 0.0;
        for (int i = 0; i < _counts.Length; i++)
        {
            long count = _counts[i];
            if (count != 0)
            {
                double deviation = MedianEquivalentValue(ValueFromIndex(i)) - mean;
                squaredDeviations += deviation * deviation * count;
            }
        }

        return Math.Sqrt(squaredDeviations / _totalCount);
    }

    public long GetMaxValue() => _maxValue == 0 ? 0 : HighestEquivalentValue(_maxValue);

    public long GetMinValue() => _counts[0] > 0 || _totalCount == 0 ? 0 : GetMinNonZeroValue();

    /// <summary>The lowest recorded value above the unit (zero-equivalent) bucket, or <see cref="long.MaxValue"/>.</summary>
    public long GetMinNonZeroValue() =>
        _minNonZeroValue == long.MaxValue ? long.MaxValue : LowestEquivalentValue(_minNonZeroValue);

    /// <summary>The count of <paramref name="value"/>'s bucket; values past the range read the last bucket.</summary>
    public long GetCountAtValue(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return _counts[Math.Min(CountsArrayIndex(value), _counts.Length - 1)];
    }

    public long SizeOfEquivalentValueRange(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return 1L << (_unitMagnitude + GetBucketIndex(value));
    }

    public long LowestEquivalentValue(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        int bucketIndex = GetBucketIndex(value);
        return (long)GetSubBucketIndex(value, bucketIndex) << (bucketIndex + _unitMagnitude);
    }

    public long HighestEquivalentValue(long value) => NextNonEquivalentValue(value) - 1;

    /// <summary>The middle of <paramref name="value"/>'s bucket, rounded up.</summary>
    public long MedianEquivalentValue(long value) =>
        LowestEquivalentValue(value) + (SizeOfEquivalentValueRange(value) >> 1);

    public long NextNonEquivalentValue(long value) => LowestEquivalentValue(value) + SizeOfEquivalentValueRange(value);

    public bool ValuesAreEquivalent(long a, long b) => LowestEquivalentValue(a) == LowestEquivalentValue(b);

    /// <summary>
    /// Java's PercentileIterator: steps through percentile levels, <paramref name="percentileTicksPerHalfDistance"/>
    /// per halving of the distance to 100%, reporting the bucket that reaches each level; after the last recorded
    /// value a final step reports the 100th percentile.
    /// </summary>
    public IEnumerable<LegacyIterationValue> Percentiles(int percentileTicksPerHalfDistance)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(percentileTicksPerHalfDistance, 1);
        return IteratePercentiles(percentileTicksPerHalfDistance);
    }

    /// <summary>Java's RecordedValuesIterator: one step per non-empty bucket, in value order.</summary>
    public IEnumerable<LegacyIterationValue> RecordedValues()
    {
        long total = _totalCount;
        long totalCountToIndex = 0;
        long totalValueToIndex = 0;
        long previousValue = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            long count = _counts[i];
            if (count == 0)
            {
                continue;
            }

            long value = HighestEquivalentValue(ValueFromIndex(i));
            totalCountToIndex += count;
            totalValueToIndex += count * value;
            double percentile = 100.0 * totalCountToIndex / total;
            yield return new LegacyIterationValue(
                value, previousValue, count, count, totalCountToIndex, totalValueToIndex, percentile, percentile);
            previousValue = value;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int GetBucketIndex(long value) =>
        _leadingZeroCountBase - BitOperations.LeadingZeroCount((ulong)(value | _subBucketMask));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int GetSubBucketIndex(long value, int bucketIndex) => (int)((ulong)value >> (bucketIndex + _unitMagnitude));

    /// <summary>
    /// Bucket 0 uses all its sub-buckets; later buckets only their upper half (the lower half repeats the
    /// previous bucket at half the resolution), so each bucket adds a half-bucket of counts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int CountsArrayIndex(long value)
    {
        int bucketIndex = GetBucketIndex(value);
        int subBucketIndex = GetSubBucketIndex(value, bucketIndex);
        return ((bucketIndex + 1) << _subBucketHalfCountMagnitude) + (subBucketIndex - _subBucketHalfCount);
    }

    /// <summary>The lowest value counted at <paramref name="index"/>.</summary>
    internal long ValueFromIndex(int index)
    {
        int bucketIndex = (index >> _subBucketHalfCountMagnitude) - 1;
        int subBucketIndex = (index & (_subBucketHalfCount - 1)) + _subBucketHalfCount;
        if (bucketIndex < 0)
        {
            subBucketIndex -= _subBucketHalfCount;
            bucketIndex = 0;
        }

        return (long)subBucketIndex << (bucketIndex + _unitMagnitude);
    }

    internal long GetCountAtIndex(int index) => _counts[index];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void UpdateMinAndMax(long value)
    {
        if (value > _maxValue)
        {
            _maxValue = value | _unitMagnitudeMask;
        }

        // Values inside the first unit are zero-equivalent and never the minimum non-zero value.
        if (value < _minNonZeroValue && value > _unitMagnitudeMask)
        {
            _minNonZeroValue = value & ~_unitMagnitudeMask;
        }
    }

    private IEnumerable<LegacyIterationValue> IteratePercentiles(int percentileTicksPerHalfDistance)
    {
        long total = _totalCount;
        long[] counts = _counts;
        int index = 0;
        bool indexCounted = false;
        long totalCountToIndex = 0;
        long totalValueToIndex = 0;
        long totalCountToPrevious = 0;
        long previousValue = 0;
        double levelTo = 0.0;
        bool finalStep = false;
        while (total > 0)
        {
            if (totalCountToIndex >= total)
            {
                // Every count has been reported: one more step at the last value reports 100%.
                levelTo = 100.0;
                finalStep = true;
            }

            while (true)
            {
                if (index >= counts.Length)
                {
                    yield break;
                }

                long count = counts[index];
                if (!indexCounted)
                {
                    totalCountToIndex += count;
                    totalValueToIndex += count * HighestEquivalentValue(ValueFromIndex(index));
                    indexCounted = true;
                }

                if (count != 0 && 100.0 * totalCountToIndex / total >= levelTo)
                {
                    break;
                }

                index++;
                indexCounted = false;
            }

            long value = HighestEquivalentValue(ValueFromIndex(index));
            yield return new LegacyIterationValue(
                value, previousValue, counts[index], totalCountToIndex - totalCountToPrevious, totalCountToIndex,
                totalValueToIndex, 100.0 * totalCountToIndex / total, levelTo);
            if (finalStep)
            {
                yield break;
            }

            previousValue = value;
            totalCountToPrevious = totalCountToIndex;

            // The same double arithmetic as Java, so levels (and .hgrm rows) match it exactly.
            long halvings = (long)(Math.Log(100.0 / (100.0 - levelTo)) / Math.Log(2));
            long percentileReportingTicks = percentileTicksPerHalfDistance * (long)Math.Pow(2, halvings + 1);
            levelTo += 100.0 / percentileReportingTicks;
        }
    }

    private LegacyHdrHistogram EmptyCopy() =>
        new(LowestDiscernibleValue, HighestTrackableValue, NumberOfSignificantValueDigits)
        {
            StartTimeStamp = StartTimeStamp,
            EndTimeStamp = EndTimeStamp,
            Tag = Tag,
        };

    private int BucketsNeededToCover(long value)
    {
        long smallestUntrackableValue = (long)SubBucketCount << _unitMagnitude;
        int bucketsNeeded = 1;
        while (smallestUntrackableValue <= value)
        {
            if (smallestUntrackableValue > long.MaxValue / 2)
            {
                return bucketsNeeded + 1;
            }

            smallestUntrackableValue <<= 1;
            bucketsNeeded++;
        }

        return bucketsNeeded;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowValueOutOfRange(long value) =>
        throw new ArgumentOutOfRangeException(
            nameof(value), value, $"Value is outside the histogram's range [0, {HighestRecordableValue}].");
}
