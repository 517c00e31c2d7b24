using System.Collections.Concurrent;

namespace Forwarder.Metrics;

/// <summary>Every counter the admin endpoint exports, by listener and service name.</summary>
internal sealed class ForwarderMetrics
{
    private readonly ConcurrentDictionary<string, ListenerMetrics> _listeners = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ServiceMetrics> _services = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Listener, string Route), HttpMetrics> _routes = new();
    private readonly ConcurrentDictionary<string, PeerMetrics> _peers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, RelayLinkMetrics> _relays = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, UdpMetrics> _udp = new(StringComparer.Ordinal);
    private readonly long[] _linksRefused = new long[Enum.GetValues<LinkRefusal>().Length];
    private long _reloadsSucceeded;
    private int _quicLinkPort = -1;
    private long _reloadsFailed;

    public long ReloadsSucceeded => Volatile.Read(ref _reloadsSucceeded);

    public DiscoveryMetrics Discovery { get; } = new();

    public Forwarder.Dns.DnsMetrics Dns { get; } = new();
    public Interception.InterceptMetrics Intercept { get; } = new();

    public long ReloadsFailed => Volatile.Read(ref _reloadsFailed);

    public ListenerMetrics Listener(string name) => _listeners.GetOrAdd(name, static n => new ListenerMetrics(n));

    public ServiceMetrics Service(string name) => _services.GetOrAdd(name, static n => new ServiceMetrics(n));

    public HttpMetrics Route(string listener, string route) => _routes.GetOrAdd((listener, route), static _ => new HttpMetrics());

    public IEnumerable<((string Listener, string Route) Key, HttpMetrics Metrics)> Routes
        => _routes.OrderBy(r => r.Key.Listener, StringComparer.Ordinal).ThenBy(r => r.Key.Route, StringComparer.Ordinal).Select(r => (r.Key, r.Value));

    /// <summary>Bytes all listeners moved both ways since start: whether traffic flows at all, cheaply.</summary>
    public long BytesForwarded
    {
        get
        {
            long total = 0;
            foreach (var listener in _listeners.Values)
            {
                total += listener.BytesReceived + listener.BytesSent;
            }

            return total;
        }
    }

    public IEnumerable<ListenerMetrics> Listeners => _listeners.Values.OrderBy(l => l.Name, StringComparer.Ordinal);

    /// <summary>The sessions and datagrams of a udp listener (its bytes count in <see cref="Listener"/>'s).</summary>
    public UdpMetrics Udp(string name) => _udp.GetOrAdd(name, static n => new UdpMetrics(n));

    public IEnumerable<UdpMetrics> UdpListeners => _udp.Values.OrderBy(l => l.Name, StringComparer.Ordinal);

    /// <summary>The links to and from a peer node.</summary>
    public PeerMetrics Peer(string name) => _peers.GetOrAdd(name, static n => new PeerMetrics(n));

    public IEnumerable<PeerMetrics> Peers => _peers.Values.OrderBy(p => p.Name, StringComparer.Ordinal);

    /// <summary>This node's session with a relay.</summary>
    public RelayLinkMetrics Relay(string name) => _relays.GetOrAdd(name, static n => new RelayLinkMetrics(n));

    public IEnumerable<RelayLinkMetrics> Relays => _relays.Values.OrderBy(r => r.Name, StringComparer.Ordinal);

    /// <summary>Links peers opened that this node refused, by why.</summary>
    public long LinksRefused(LinkRefusal reason) => Volatile.Read(ref _linksRefused[(int)reason]);

    public void LinkRefused(LinkRefusal reason) => Interlocked.Increment(ref _linksRefused[(int)reason]);

    public IEnumerable<ServiceMetrics> Services => _services.Values.OrderBy(s => s.Name, StringComparer.Ordinal);

    /// <summary>1 while the node link port takes QUIC links over UDP, 0 when that port could not be bound; -1 where the node takes none.</summary>
    public int QuicLinkPort => Volatile.Read(ref _quicLinkPort);

    public void QuicLinkPortBound(bool bound) => Volatile.Write(ref _quicLinkPort, bound ? 1 : 0);

    public void ReloadSucceeded() => Interlocked.Increment(ref _reloadsSucceeded);

    public void ReloadFailed() => Interlocked.Increment(ref _reloadsFailed);
}
