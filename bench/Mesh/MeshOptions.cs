using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Mesh;

/// <summary>What <c>bench mesh</c> was asked to do.</summary>
/// <param name="Instances">Service instances (K), spread over the nodes in turn.</param>
/// <param name="Nodes">Nodes (M): groups of processes, one node proxy each in node mode.</param>
/// <param name="Rates">Open-loop rates; null entries run closed loop.</param>
/// <param name="Connections">Client connections, spread over the client's entry points.</param>
internal sealed record MeshOptions(
    IReadOnlyList<CompareProtocol> Protocols,
    int Instances,
    int Nodes,
    IReadOnlyList<string> Arms,
    IReadOnlyList<double?> Rates,
    int Reps,
    TimeSpan Duration,
    TimeSpan Warmup,
    int Connections,
    string OutputDirectory,
    string? ForwarderPath);
