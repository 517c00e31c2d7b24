namespace Forwarder.Bench.Micro;

/// <summary>
/// One step of a histogram iteration, with the fields of Java's LegacyIterationValue.
/// </summary>
/// <param name="ValueIteratedTo">Highest value equivalent to the bucket this step reached.</param>
/// <param name="ValueIteratedFrom">The previous step's <paramref name="ValueIteratedTo"/> (0 for the first).</param>
/// <param name="CountAtValueIteratedTo">Count in the bucket this step reached.</param>
/// <param name="CountAddedInThisIterationStep">Counts passed since the previous step.</param>
/// <param name="TotalCountToThisValue">Counts up to and including this bucket.</param>
/// <param name="TotalValueToThisValue">Sum of count times highest equivalent value up to this bucket.</param>
/// <param name="Percentile">Percentage of all counts up to and including this bucket.</param>
/// <param name="PercentileLevelIteratedTo">The level this step stopped at (equals <paramref name="Percentile"/> except for percentile iteration).</param>
internal readonly record struct LegacyIterationValue(
    long ValueIteratedTo,
    long ValueIteratedFrom,
    long CountAtValueIteratedTo,
    long CountAddedInThisIterationStep,
    long TotalCountToThisValue,
    long TotalValueToThisValue,
    double Percentile,
    double PercentileLevelIteratedTo);
