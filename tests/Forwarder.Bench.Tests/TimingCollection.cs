namespace Forwarder.Bench.Tests;

/// <summary>
/// Tests that measure time (open-loop rates, latencies, whole comparisons) run one after another,
/// so they do not starve each other of the machine's two cores; the rest run alongside.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TimingCollection
{
    public const string Name = "timing";
}
