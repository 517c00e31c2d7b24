using System.Diagnostics.CodeAnalysis;
using System.Net;
using Forwarder.Cluster;
using Forwarder.Configuration;

namespace Forwarder.Dns;

/// <summary>The records of one name in the cluster domain; a node with none still exists (NODATA, not NXDOMAIN).</summary>
internal sealed class ZoneNode
{
    public List<byte[]> Addresses { get; } = [];

    public List<SrvTarget> Srv { get; } = [];
}

/// <param name="Target">The wire name SRV points at; its addresses are a node of the zone too.</param>
internal readonly record struct SrvTarget(ushort Port, byte[] Target);

/// <summary>
/// The cluster domain as DNS sees it, built whole from one <see cref="ClusterState"/>:
/// NAME.NS.svc.DOMAIN (ClusterIPs, or a headless service's ready endpoint IPs, each also named
/// A-B-C-D.NAME.NS.svc.DOMAIN), _PORT._PROTO.NAME.NS.svc.DOMAIN SRV, and the names between.
/// Lookups take the question's wire bytes, so answering needs no string.
/// </summary>
internal sealed class ClusterZone
{
    private readonly Dictionary<byte[], ZoneNode> _nodes = new(WireNameComparer.Instance);
    private readonly Dictionary<byte[], ZoneNode>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    private ClusterZone(ClusterState state, string domain)
    {
        _lookup = _nodes.GetAlternateLookup<ReadOnlySpan<byte>>();
        State = state;
        Apex = DnsName.FromText(domain);
        Primary = DnsName.Prepend("ns", DnsName.Prepend("dns", Apex));
        Mailbox = DnsName.Prepend("hostmaster", Apex);
        Serial = (uint)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var svc = DnsName.Prepend("svc", Apex);
        Node(Apex);
        Node(svc);
        foreach (var service in state.Services.GroupBy(s => (s.Namespace, s.Service)))
        {
            var ns = DnsName.Prepend(service.Key.Namespace, svc);
            Node(ns);
            Add(DnsName.Prepend(service.Key.Service, ns), [.. service]);
        }
    }

    /// <summary>The cluster state this zone was built from.</summary>
    public ClusterState State { get; }

    /// <summary>The cluster domain in wire form.</summary>
    public byte[] Apex { get; }

    public byte[] Primary { get; }

    public byte[] Mailbox { get; }

    public uint Serial { get; }

    public static ClusterZone Build(ClusterState state, string domain) => new(state, domain);

    public bool TryFind(ReadOnlySpan<byte> name, [MaybeNullWhen(false)] out ZoneNode node) => _lookup.TryGetValue(name, out node);

    private void Add(byte[] name, List<ClusterService> ports)
    {
        var service = Node(name);
        var clusterIps = ports.SelectMany(p => p.ClusterIps).Distinct().Select(ParseOrNull).OfType<IPAddress>().ToList();
        var headless = clusterIps.Count == 0;
        if (headless)
        {
            foreach (var ip in ports.SelectMany(p => p.Endpoints).Where(e => e.Ready).Select(e => IPEndPoint.Parse(e.Address).Address).Distinct())
            {
                service.Addresses.Add(ip.GetAddressBytes());
                Node(PodName(ip, name)).Addresses.Add(ip.GetAddressBytes());
            }
        }
        else
        {
            service.Addresses.AddRange(clusterIps.Select(ip => ip.GetAddressBytes()));
        }

        foreach (var port in ports)
        {
            // A headless service's SRV records name each ready endpoint and its own port.
            List<SrvTarget> targets = headless
                ? [.. port.Endpoints.Where(e => e.Ready).Select(e => IPEndPoint.Parse(e.Address)).Select(e => new SrvTarget((ushort)e.Port, PodName(e.Address, name)))]
                : [new SrvTarget((ushort)port.Port, name)];
            service.Srv.AddRange(targets);
            if (!string.IsNullOrEmpty(port.PortName) && ClusterServiceName.IsDnsLabel(port.PortName))
            {
                var proto = DnsName.Prepend("_" + port.Protocol.ToLowerInvariant(), name);
                Node(proto);
                Node(DnsName.Prepend("_" + port.PortName, proto)).Srv.AddRange(targets);
            }
        }
    }

    private ZoneNode Node(byte[] name)
    {
        if (!_nodes.TryGetValue(name, out var node))
        {
            node = new ZoneNode();
            _nodes[name] = node;
        }

        return node;
    }

    /// <summary>The name CoreDNS gives an endpoint without a hostname: its address with dashes, below the service.</summary>
    private static byte[] PodName(IPAddress ip, byte[] service) => DnsName.Prepend(ip.ToString().Replace('.', '-').Replace(':', '-'), service);

    private static IPAddress? ParseOrNull(string text) => IPAddress.TryParse(text, out var ip) ? ip : null;
}

/// <summary>Compares lower-cased wire names, also against a span so lookups need no array.</summary>
internal sealed class WireNameComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    public static readonly WireNameComparer Instance = new();

    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    public int GetHashCode(byte[] obj) => GetHashCode(obj.AsSpan());

    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

    public int GetHashCode(ReadOnlySpan<byte> alternate)
    {
        var hash = default(HashCode);
        hash.AddBytes(alternate);
        return hash.ToHashCode();
    }

    public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
}
