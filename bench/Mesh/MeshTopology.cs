using System.Net;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Mesh;

/// <summary>
/// K service instances on M nodes (instance i on node i mod M), each on its own loopback port. The
/// client app runs on every node: its connections go to the nodes in turn.
/// </summary>
internal sealed class MeshTopology
{
    public MeshTopology(int instances, int nodes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodes, 1);
        Nodes = nodes;
        Instances = [.. Enumerable.Range(0, instances).Select(_ => FreePort.Next())];
    }

    public int Nodes { get; }

    public IReadOnlyList<IPEndPoint> Instances { get; }

    public IEnumerable<IPEndPoint> InstancesOn(int node) => Instances.Where((_, i) => i % Nodes == node);
}
