namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// Tests that measure the whole process (allocated bytes) run alone, after every parallel test,
/// so no other test's work is counted.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IsolatedCollection
{
    public const string Name = "Isolated";
}
