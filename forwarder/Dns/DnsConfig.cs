using System.Net;

namespace Forwarder.Dns;

/// <summary>The <c>dns</c> section: the built-in service DNS server, as the user wrote it.</summary>
/// <param name="EndPoint">Where it answers, over UDP and TCP on the same port.</param>
/// <param name="Upstreams">Resolvers for names outside the cluster domain; empty for the nameservers of /etc/resolv.conf.</param>
/// <param name="CacheSize">Upstream answers kept (least recently used go first); 0 disables the cache.</param>
/// <param name="Ttl">The TTL of answers from the cluster model.</param>
/// <param name="UpstreamTimeout">How long one upstream gets to answer before the next is asked.</param>
/// <param name="Domain">The cluster domain (cluster.domain), answered from the cluster model.</param>
internal sealed record DnsConfig(string Listen, IPEndPoint EndPoint, IReadOnlyList<IPEndPoint> Upstreams, int CacheSize, TimeSpan Ttl, TimeSpan UpstreamTimeout, string Domain)
{
    public const int DefaultCacheSize = 10_000;

    public static readonly TimeSpan DefaultTtl = TimeSpan.FromSeconds(5);

    public static readonly TimeSpan DefaultUpstreamTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The same server settings: a change to any of them applies at the next restart.</summary>
    public bool SameAs(DnsConfig other) => this with { Upstreams = [] } == other with { Upstreams = [] } && Upstreams.SequenceEqual(other.Upstreams);
}
