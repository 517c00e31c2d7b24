using System.Collections.Concurrent;
using Forwarder.Metrics;

namespace Forwarder.Dns;

/// <summary>Counters of the DNS server: queries by type and result, the cache, and each upstream resolver.</summary>
internal sealed class DnsMetrics
{
    public static readonly string[] TypeLabels = ["a", "aaaa", "srv", "ptr", "soa", "any", "other"];

    private static readonly int ResultCount = Enum.GetValues<DnsResult>().Length;

    private readonly long[] _queries = new long[TypeLabels.Length * ResultCount];
    private readonly ConcurrentDictionary<string, UpstreamDnsMetrics> _upstreams = new(StringComparer.Ordinal);
    private long _enabled;
    private long _dropped;
    private long _cacheHits;
    private long _cacheMisses;
    private long _cacheEntries;
    private long _coalesced;

    /// <summary>1 once a dns section started the server; the series are written only then.</summary>
    public bool Enabled => Volatile.Read(ref _enabled) == 1;

    /// <summary>Datagrams and TCP messages ignored: shorter than a header, or responses.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    public long CacheHits => Volatile.Read(ref _cacheHits);

    public long CacheMisses => Volatile.Read(ref _cacheMisses);

    public long CacheEntries => Volatile.Read(ref _cacheEntries);

    /// <summary>Queries that waited for an identical one already sent upstream instead of sending their own.</summary>
    public long Coalesced => Volatile.Read(ref _coalesced);

    public IEnumerable<UpstreamDnsMetrics> Upstreams => _upstreams.Values.OrderBy(u => u.Name, StringComparer.Ordinal);

    public void Enable() => Volatile.Write(ref _enabled, 1);

    public long Queries(int typeBucket, DnsResult result) => Volatile.Read(ref _queries[(typeBucket * ResultCount) + (int)result]);

    public void Answered(ushort type, DnsResult result) => Interlocked.Increment(ref _queries[(TypeBucket(type) * ResultCount) + (int)result]);

    public void Drop() => Interlocked.Increment(ref _dropped);

    public void CacheHit() => Interlocked.Increment(ref _cacheHits);

    public void CacheMiss() => Interlocked.Increment(ref _cacheMisses);

    public void CacheSize(int entries) => Volatile.Write(ref _cacheEntries, entries);

    public void Coalesce() => Interlocked.Increment(ref _coalesced);

    public UpstreamDnsMetrics Upstream(string name) => _upstreams.GetOrAdd(name, static n => new UpstreamDnsMetrics(n));

    public static string ResultLabel(DnsResult result) => result switch
    {
        DnsResult.NoData => "nodata",
        DnsResult.NxDomain => "nxdomain",
        DnsResult.ServFail => "servfail",
        DnsResult.FormErr => "formerr",
        DnsResult.NotImp => "notimp",
        _ => result.ToString().ToLowerInvariant(),
    };

    private static int TypeBucket(ushort type) => type switch
    {
        DnsType.A => 0,
        DnsType.Aaaa => 1,
        DnsType.Srv => 2,
        DnsType.Ptr => 3,
        DnsType.Soa => 4,
        DnsType.Any => 5,
        _ => 6,
    };
}

/// <summary>One upstream resolver: how long it takes and how often it fails.</summary>
internal sealed class UpstreamDnsMetrics(string name)
{
    private long _failures;
    private long _tcpRetries;

    public string Name { get; } = name;

    public LatencyHistogram Latency { get; } = new();

    /// <summary>Exchanges that timed out, failed, or got SERVFAIL/REFUSED; the next upstream was asked.</summary>
    public long Failures => Volatile.Read(ref _failures);

    /// <summary>Truncated UDP answers asked again over TCP.</summary>
    public long TcpRetries => Volatile.Read(ref _tcpRetries);

    public void Failed() => Interlocked.Increment(ref _failures);

    public void RetriedOverTcp() => Interlocked.Increment(ref _tcpRetries);
}
