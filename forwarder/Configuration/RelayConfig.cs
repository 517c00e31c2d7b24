using System.Net;

namespace Forwarder.Configuration;

/// <summary>
/// A relay server (<c>forwarder relay --config relay.yaml</c>): where nodes that cannot reach
/// each other dial out to, register under their certificate's name, and have streams passed
/// between them.
/// </summary>
/// <param name="Identity">The relay's certificate (DNS name = <paramref name="Name"/>, from the mesh CA) and key.</param>
/// <param name="Authority">The mesh CA: the only issuer a node's certificate may chain to.</param>
internal sealed record RelayConfig(string Source, string Name, IPEndPoint ListenEndPoint, CertificateFiles Identity, string Authority, RelayLimits Limits, AdminConfig? Admin, RelaySpliceConfig Splice);

/// <summary>What one registered node may use of the relay.</summary>
/// <param name="StreamsPerNode">Relayed streams a node may have open at once, counted on the side that opened them.</param>
/// <param name="BytesPerSecondPerNode">What a node may push through the relay, summed over its streams; null is no limit.</param>
internal sealed record RelayLimits(int StreamsPerNode, long? BytesPerSecondPerNode)
{
    public const int DefaultStreamsPerNode = 1024;
}

/// <summary>
/// How a relay joins two nodes: by splicing two plain TCP connections the nodes run their own
/// end-to-end TLS link over (the relay never sees the plaintext), or by terminating each node's
/// session and copying streams between them.
/// </summary>
internal enum RelayMode
{
    Splice,
    Terminate,
}

/// <summary>The relay's splice port (<c>relay.mode</c>, <c>relay.splicePort</c>, <c>relay.ticketLifetime</c>, <c>relay.spliceIdleTimeout</c>, <c>relay.spliceHalfCloseTimeout</c>).</summary>
/// <param name="Port">The TCP port nodes present their tickets on (on the listen address); 0 takes any free one, which nodes learn with their tickets.</param>
/// <param name="TicketLifetime">How long a rendezvous waits for both halves: a ticket not presented by then is void, a half presented alone is closed.</param>
/// <param name="IdleTimeout">A spliced link that carries no byte either way for this long is closed: a node that vanished without a FIN or RST.</param>
/// <param name="HalfCloseTimeout">A spliced link one side has closed (its FIN passed on) is closed once it has been half-closed this long with nothing crossing it (the open half may still be sending) and the other side never closes.</param>
internal sealed record RelaySpliceConfig(RelayMode Mode, int Port, TimeSpan TicketLifetime, TimeSpan IdleTimeout, TimeSpan HalfCloseTimeout)
{
    public static readonly TimeSpan DefaultTicketLifetime = TimeSpan.FromSeconds(10);

    /// <summary>Well above a node's keep-alive interval (<see cref="NodeConfig.DefaultKeepAlive"/>), whose pings cross every live link.</summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The shortest idle timeout allowed: two of a node's default keep-alive intervals, so that a
    /// healthy idle link whose one ping came late is not cut. The relay cannot see the nodes'
    /// own node.keepAlive, which the README tells to keep below half of this timeout.
    /// </summary>
    public static readonly TimeSpan MinIdleTimeout = 2 * NodeConfig.DefaultKeepAlive;

    public static readonly TimeSpan DefaultHalfCloseTimeout = TimeSpan.FromSeconds(30);
}
