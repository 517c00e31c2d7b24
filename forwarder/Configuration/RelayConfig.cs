using System.Net;

namespace Forwarder.Configuration;

/// <summary>
/// A relay server (<c>forwarder relay --config relay.yaml</c>): where nodes that cannot reach
/// each other dial out to, register under their certificate's name, and have streams passed
/// between them.
/// </summary>
/// <param name="Identity">The relay's certificate (DNS name = <paramref name="Name"/>, from the mesh CA) and key.</param>
/// <param name="Authority">The mesh CA: the only issuer a node's certificate may chain to.</param>
internal sealed record RelayConfig(string Source, string Name, IPEndPoint ListenEndPoint, CertificateFiles Identity, string Authority, RelayLimits Limits, AdminConfig? Admin);

/// <summary>What one registered node may use of the relay.</summary>
/// <param name="StreamsPerNode">Relayed streams a node may have open at once, counted on the side that opened them.</param>
/// <param name="BytesPerSecondPerNode">What a node may push through the relay, summed over its streams; null is no limit.</param>
internal sealed record RelayLimits(int StreamsPerNode, long? BytesPerSecondPerNode)
{
    public const int DefaultStreamsPerNode = 1024;
}
