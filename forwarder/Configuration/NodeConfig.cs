using System.Net;

namespace Forwarder.Configuration;

/// <summary>
/// This node's identity in the mesh and the peers it may link to: links are TLS 1.3 with both
/// ends proving a certificate from the mesh CA for the node role and the node's name.
/// </summary>
/// <param name="Listen">Where peers' links arrive; null for a node that only dials out (behind NAT).</param>
/// <param name="Identity">This node's certificate (<c>forwarder://node/NAME</c>) and key.</param>
/// <param name="Authority">The mesh CA's certificate file: the only issuer a peer's certificate may chain to.</param>
/// <param name="Relays">Relays this node registers with (dialling out, so it works behind NAT) and reaches peers through when a direct link fails.</param>
/// <param name="KeepAlive">Between pings on links and relay sessions; a link whose pings go unanswered is dropped as dead.</param>
/// <param name="AcceptUnlistedPeers">Whether any node of the mesh may link to this one and send streams through relays; by default only <paramref name="Peers"/> may.</param>
/// <param name="Transport">How links to peers are dialled unless a peer says otherwise.</param>
/// <param name="PunchTtl">
/// The TTL of the probes this node sends when a peer punches through to it: enough hops to leave
/// this node's NAT, too few to reach the peer's (2: the NAT is the first router).
/// </param>
/// <param name="RelayMode">
/// How this node's links go through relays: splice (a TLS link to the peer over two TCP
/// connections the relay joins, where the relay and the peer agree; else the relay terminates) or
/// terminate (always streams relayed over the relay sessions).
/// </param>
internal sealed record NodeConfig(string Name, string? Listen, IPEndPoint? ListenEndPoint, CertificateFiles Identity, string Authority, IReadOnlyList<PeerConfig> Peers, IReadOnlyList<RelayAddress> Relays, TimeSpan KeepAlive, bool AcceptUnlistedPeers = false, NodeTransport Transport = NodeTransport.Tcp, int PunchTtl = NodeConfig.DefaultPunchTtl, RelayMode RelayMode = RelayMode.Splice)
{
    public const int DefaultPunchTtl = 2;

    public static readonly TimeSpan DefaultKeepAlive = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Whether <c>node.listen</c>'s port also accepts QUIC links (over UDP): when this node dials any
    /// peer over QUIC, its peers are taken to be configured alike and to dial it so too.
    /// </summary>
    public bool AcceptsQuic => Transport != NodeTransport.Tcp || Peers.Any(p => p.Transport is NodeTransport.Quic or NodeTransport.Auto);

    public PeerConfig? Peer(string name) => Peers.FirstOrDefault(p => p.Name == name);

    /// <summary>How the link to <paramref name="peer"/> is dialled: its own transport, else the node's.</summary>
    public NodeTransport TransportTo(PeerConfig peer) => peer.Transport ?? Transport;

    /// <summary>Why node <paramref name="name"/> may not link to this one or send it streams; null when it may.</summary>
    public string? Refuses(string name) => AcceptUnlistedPeers || Peer(name) is not null
        ? null
        : $"node '{name}' is not in node.peers (and node.acceptUnlistedPeers is off)";

    /// <summary>Equal in everything but the lists, which are compared by content.</summary>
    public bool SameAs(NodeConfig other)
        => this with { Peers = other.Peers, Relays = other.Relays } == other
            && Peers.SequenceEqual(other.Peers, PeerConfig.ByAddress)
            && Relays.Select(r => (r.Name, r.Address)).SequenceEqual(other.Relays.Select(r => (r.Name, r.Address)));
}

/// <summary>Another node, reached at <paramref name="Address"/> (HOST:PORT of its node listener), or only through relays when it has none.</summary>
/// <param name="Transport">This peer's override of <c>node.transport</c>; null to follow it.</param>
internal sealed record PeerConfig(string Name, string? Address, EndPoint? EndPoint, NodeTransport? Transport = null)
{
    public static readonly IEqualityComparer<PeerConfig> ByAddress = EqualityComparer<PeerConfig>.Create(
        (a, b) => a?.Name == b?.Name && a?.Address == b?.Address && a?.Transport == b?.Transport,
        p => HashCode.Combine(p.Name, p.Address, p.Transport));
}

/// <summary>
/// How a node dials its link to a peer: TLS 1.3 + yamux over TCP, QUIC over UDP, or QUIC when it
/// gets through and TCP when it does not; a relay is the last resort in every case.
/// </summary>
internal enum NodeTransport
{
    Tcp,
    Quic,
    Auto,
}

/// <summary>A relay server, named as its certificate names it, at HOST:PORT.</summary>
internal sealed record RelayAddress(string Name, string Address, EndPoint EndPoint);

/// <summary>
/// An endpoint that lives on another node: dialled through the link to <see cref="Node"/>, which
/// connects to <see cref="Target"/> on its side.
/// </summary>
internal sealed class NodeEndPoint(string node, string target) : EndPoint
{
    public string Node { get; } = node;

    /// <summary>The endpoint's address as configured, resolved on the remote node.</summary>
    public string Target { get; } = target;

    public override string ToString() => $"{Target} via node {Node}";

    public override bool Equals(object? obj) => obj is NodeEndPoint other && other.Node == Node && other.Target == Target;

    public override int GetHashCode() => HashCode.Combine(Node, Target);
}
