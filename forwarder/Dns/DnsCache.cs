namespace Forwarder.Dns;

/// <summary>
/// Upstream answers by question (lower-cased name, type, class), least recently used evicted
/// first beyond the capacity, each until its TTL runs out.
/// </summary>
internal sealed class DnsCache
{
    private readonly int _capacity;
    private readonly TimeProvider _time;
    private readonly DnsMetrics _metrics;
    private readonly Lock _lock = new();
    private readonly Dictionary<byte[], LinkedListNode<(byte[] Key, UpstreamAnswer Answer)>> _entries = new(WireNameComparer.Instance);
    private readonly Dictionary<byte[], LinkedListNode<(byte[] Key, UpstreamAnswer Answer)>>.AlternateLookup<ReadOnlySpan<byte>> _lookup;
    private readonly LinkedList<(byte[] Key, UpstreamAnswer Answer)> _recency = new();

    public DnsCache(int capacity, TimeProvider time, DnsMetrics metrics)
    {
        _capacity = capacity;
        _time = time;
        _metrics = metrics;
        _lookup = _entries.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>A live answer for the question; null when none or expired.</summary>
    public UpstreamAnswer? Get(ReadOnlySpan<byte> key)
    {
        if (_capacity == 0)
        {
            return null;
        }

        lock (_lock)
        {
            if (!_lookup.TryGetValue(key, out var node))
            {
                return null;
            }

            if (_time.GetElapsedTime(node.Value.Answer.StoredAt) >= node.Value.Answer.Ttl)
            {
                Remove(node);
                return null;
            }

            _recency.Remove(node);
            _recency.AddFirst(node);
            return node.Value.Answer;
        }
    }

    public void Add(byte[] key, UpstreamAnswer answer)
    {
        if (_capacity == 0 || answer.Ttl <= TimeSpan.Zero)
        {
            return;
        }

        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var existing))
            {
                Remove(existing);
            }

            while (_entries.Count >= _capacity && _recency.Last is { } oldest)
            {
                Remove(oldest);
            }

            _entries[key] = _recency.AddFirst((key, answer));
            _metrics.CacheSize(_entries.Count);
        }
    }

    private void Remove(LinkedListNode<(byte[] Key, UpstreamAnswer Answer)> node)
    {
        _entries.Remove(node.Value.Key);
        _recency.Remove(node);
        _metrics.CacheSize(_entries.Count);
    }
}
