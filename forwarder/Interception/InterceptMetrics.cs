namespace Forwarder.Interception;

/// <summary>What the intercept listener did with the connections it took, and the state of its rules.</summary>
internal sealed class InterceptMetrics
{
    private long _enabled;
    private long _served;
    private long _unknownDestination;
    private long _notRedirected;
    private long _vips;
    private long _udpVips;
    private long _rulesInstalled;
    private long _ruleErrors;

    /// <summary>1 once an intercept section started the listener; the series are written only then.</summary>
    public bool Enabled => Volatile.Read(ref _enabled) == 1;

    public long Served => Volatile.Read(ref _served);

    /// <summary>Connections whose original destination is no known VIP: reset.</summary>
    public long UnknownDestination => Volatile.Read(ref _unknownDestination);

    /// <summary>Connections made to the intercept port directly (no original destination): reset.</summary>
    public long NotRedirected => Volatile.Read(ref _notRedirected);

    public long Vips => Volatile.Read(ref _vips);

    /// <summary>UDP VIPs, each with a udp listener of its own.</summary>
    public long UdpVips => Volatile.Read(ref _udpVips);

    public long RulesInstalled => Volatile.Read(ref _rulesInstalled);

    public long RuleErrors => Volatile.Read(ref _ruleErrors);

    public void Enable() => Volatile.Write(ref _enabled, 1);

    public void ConnectionServed() => Interlocked.Increment(ref _served);

    public void ConnectionUnknown() => Interlocked.Increment(ref _unknownDestination);

    public void ConnectionNotRedirected() => Interlocked.Increment(ref _notRedirected);

    public void VipsKnown(int tcp, int udp)
    {
        Volatile.Write(ref _vips, tcp);
        Volatile.Write(ref _udpVips, udp);
    }

    public void RulesApplied(bool installed) => Volatile.Write(ref _rulesInstalled, installed ? 1 : 0);

    public void RulesFailed() => Interlocked.Increment(ref _ruleErrors);
}
