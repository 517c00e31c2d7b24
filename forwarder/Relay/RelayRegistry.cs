using System.Collections.Concurrent;
using Forwarder.Configuration;

namespace Forwarder.Relay;

/// <summary>Every node name the relay has seen, and the relay-wide counters.</summary>
internal sealed class RelayRegistry(RelayConfig config)
{
    private readonly ConcurrentDictionary<string, RelayNode> _nodes = new(StringComparer.Ordinal);
    private long _registrations;
    private long _refusedHandshakes;
    private long _acceptFailures;
    private long _refusedNames;
    private long _ticketsRefused;
    private long _ticketsExpired;
    private long _splicesIdleClosed;
    private long _splicesHalfClosedClosed;
    private long _tcpHoldsUnnamed;
    private readonly Dictionary<System.Net.IPAddress, int> _nodeSources = [];

    public long Registrations => Volatile.Read(ref _registrations);

    /// <summary>Connections refused at TLS: no certificate, a foreign one, not TLS at all.</summary>
    public long RefusedHandshakes => Volatile.Read(ref _refusedHandshakes);

    /// <summary>Accepts on the listen port that failed (out of descriptors or memory), each followed by a pause.</summary>
    public long AcceptFailures => Volatile.Read(ref _acceptFailures);

    /// <summary>Registrations refused because the name asked for is not the certificate's.</summary>
    public long RefusedNames => Volatile.Read(ref _refusedNames);

    /// <summary>Connections to the splice port refused: a ticket forged, used before, void, or never sent.</summary>
    public long TicketsRefused => Volatile.Read(ref _ticketsRefused);

    /// <summary>Splice rendezvous whose lifetime ran out before both halves came.</summary>
    public long TicketsExpired => Volatile.Read(ref _ticketsExpired);

    /// <summary>Spliced links closed because nothing crossed them for relay.spliceIdleTimeout.</summary>
    public long SplicesIdleClosed => Volatile.Read(ref _splicesIdleClosed);

    /// <summary>Spliced links closed because one side stayed half-closed for relay.spliceHalfCloseTimeout.</summary>
    public long SplicesHalfClosedClosed => Volatile.Read(ref _splicesHalfClosedClosed);

    /// <summary>TCP rendezvous connections closed because no node named their token within <see cref="RelayServer.UnnamedHoldTimeout"/>.</summary>
    public long TcpHoldsUnnamed => Volatile.Read(ref _tcpHoldsUnnamed);

    /// <summary>The UDP rendezvous' tokens, while the relay has its UDP port.</summary>
    public RendezvousTokens? UdpTokens { get; set; }

    /// <summary>The TCP rendezvous' tokens, once the relay started.</summary>
    public RendezvousTokens? TcpTokens { get; set; }

    public IEnumerable<RelayNode> Nodes => _nodes.Values.OrderBy(n => n.Name, StringComparer.Ordinal);

    public RelayNode Node(string name) => _nodes.GetOrAdd(name, static (n, limits) => new RelayNode(n, limits), config.Limits);

    /// <summary>The node of that name if it is registered now.</summary>
    public RelayNode? Registered(string name) => _nodes.TryGetValue(name, out var node) && node.Session is not null ? node : null;

    public void Registered() => Interlocked.Increment(ref _registrations);

    /// <summary>True while a registered node's session comes from <paramref name="source"/> (a <see cref="SourceKey"/>).</summary>
    public bool IsNodeSource(System.Net.IPAddress source)
    {
        lock (_nodeSources)
        {
            return _nodeSources.ContainsKey(source);
        }
    }

    /// <summary>A registered session from <paramref name="source"/> (a <see cref="SourceKey"/>) began; each is ended by <see cref="SessionEnded"/>.</summary>
    public void SessionStarted(System.Net.IPAddress source)
    {
        lock (_nodeSources)
        {
            _nodeSources[source] = _nodeSources.GetValueOrDefault(source) + 1;
        }
    }

    public void SessionEnded(System.Net.IPAddress source)
    {
        lock (_nodeSources)
        {
            var left = _nodeSources[source] - 1;
            if (left == 0)
            {
                _nodeSources.Remove(source);
            }
            else
            {
                _nodeSources[source] = left;
            }
        }
    }

    public void TcpHoldUnnamed() => Interlocked.Increment(ref _tcpHoldsUnnamed);

    public void HandshakeRefused() => Interlocked.Increment(ref _refusedHandshakes);

    public void AcceptFailed() => Interlocked.Increment(ref _acceptFailures);

    public void NameRefused() => Interlocked.Increment(ref _refusedNames);

    public void SpliceTimedOut(bool halfClosed) => Interlocked.Increment(ref halfClosed ? ref _splicesHalfClosedClosed : ref _splicesIdleClosed);

    public void TicketRefused(bool expired) => Interlocked.Increment(ref expired ? ref _ticketsExpired : ref _ticketsRefused);
}
