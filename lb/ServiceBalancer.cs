using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing;

/// <summary>
/// Balances a service's traffic over those of its endpoints that are available. When health
/// changes, a new balancer over the available set is built off the hot path and swapped in whole;
/// a pick reads one snapshot and never locks or allocates.
/// </summary>
/// <remarks>
/// Below <c>panicThreshold</c> percent of endpoints available, health is ignored and all of them
/// take traffic (Envoy's panic mode): better to load endpoints that may be fine than to pile
/// everything onto the few left. With a threshold of 0 there is no panic, and when no endpoint
/// is available a pick returns -1.
/// </remarks>
public sealed class ServiceBalancer
{
    private readonly string _policy;
    private readonly LoadBalancerEndpoint[] _endpoints;
    private readonly IReadOnlyList<EndpointHealth> _health;
    private readonly bool _activeChecks;
    private readonly HashingOptions _hashing;
    private readonly int _panicThreshold;
    private readonly Random _random;
    private readonly Action<Action> _schedule;
    private readonly Lock _rebuildLock = new();
    private readonly Action _drain;
    private ILoadBalancer? _all;
    private Snapshot _snapshot;
    private int _dirty;
    private int _scheduled;

    /// <param name="health">The endpoints' health, index for index with <paramref name="endpoints"/>.</param>
    /// <param name="activeChecks">Whether active checks run, so an endpoint takes traffic only once it passes them.</param>
    /// <param name="schedule">Runs a rebuild; the thread pool by default, inline in tests.</param>
    public ServiceBalancer(
        string policy,
        IReadOnlyList<LoadBalancerEndpoint> endpoints,
        IReadOnlyList<EndpointHealth> health,
        bool activeChecks,
        HashingOptions? hashing = null,
        int panicThreshold = 50,
        Random? random = null,
        Action<Action>? schedule = null)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(health.Count, endpoints.Count);
        _policy = policy;
        _endpoints = [.. endpoints];
        _health = health;
        _activeChecks = activeChecks;
        _hashing = hashing ?? HashingOptions.Default;
        _panicThreshold = panicThreshold;
        _random = random ?? Random.Shared;
        _schedule = schedule ?? (static work => ThreadPool.UnsafeQueueUserWorkItem(static w => w(), work, preferLocal: false));
        _drain = Drain;
        _snapshot = Build();
    }

    public int Count => _endpoints.Length;

    /// <summary>Endpoints that health allows to take traffic, as of the last rebuild.</summary>
    public int AvailableCount => Volatile.Read(ref _snapshot).AvailableCount;

    /// <summary>True while too few endpoints are available and all of them take traffic.</summary>
    public bool Panic => Volatile.Read(ref _snapshot).Panic;

    /// <summary>Times the balancer was rebuilt for a changed available set.</summary>
    public int Rebuilds { get; private set; }

    /// <summary>Index of the chosen endpoint, or -1 when none is available.</summary>
    public int Pick() => Volatile.Read(ref _snapshot).Pick(null);

    /// <inheritdoc cref="Pick()"/>
    /// <remarks>Hash policies map equal key hashes to the same endpoint while the available set stays the same.</remarks>
    public int Pick(ulong keyHash) => Volatile.Read(ref _snapshot).Pick(keyHash);

    /// <summary>Whether the endpoint takes traffic in the current snapshot (every endpoint does in panic).</summary>
    public bool Takes(int index) => Volatile.Read(ref _snapshot).Takes(index);

    /// <summary>
    /// The endpoint a retry goes to after <paramref name="last"/>: the next one not yet tried,
    /// whatever the policy would repeat; preferably one health lets take traffic, else any
    /// untried one; -1 when every endpoint was tried.
    /// </summary>
    public int NextUntried(IReadOnlySet<int> tried, int last)
    {
        var fallback = -1;
        for (var step = 1; step <= Count; step++)
        {
            var candidate = (last + step) % Count;
            if (tried.Contains(candidate))
            {
                continue;
            }

            if (Takes(candidate))
            {
                return candidate;
            }

            if (fallback < 0)
            {
                fallback = candidate;
            }
        }

        return fallback;
    }

    /// <summary>Health changed: rebuild soon, on another thread, coalescing bursts of changes into one rebuild.</summary>
    public void Invalidate()
    {
        Volatile.Write(ref _dirty, 1);
        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0)
        {
            _schedule(_drain);
        }
    }

    private void Drain()
    {
        while (true)
        {
            while (Interlocked.Exchange(ref _dirty, 0) == 1)
            {
                Rebuild();
            }

            Volatile.Write(ref _scheduled, 0);

            // A change that came in after the last pass but before the flag dropped is ours to do.
            if (Volatile.Read(ref _dirty) == 0 || Interlocked.CompareExchange(ref _scheduled, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private void Rebuild()
    {
        lock (_rebuildLock)
        {
            var next = Build();
            if (!ReferenceEquals(next, Volatile.Read(ref _snapshot)))
            {
                Volatile.Write(ref _snapshot, next);
                Rebuilds++;
            }
        }
    }

    private Snapshot Build()
    {
        var available = new bool[_endpoints.Length];
        var count = 0;
        for (var i = 0; i < available.Length; i++)
        {
            if (_health[i].IsAvailable(_activeChecks))
            {
                available[i] = true;
                count++;
            }
        }

        var current = Volatile.Read(ref _snapshot);
        if (current is not null && current.Available.AsSpan().SequenceEqual(available))
        {
            return current;
        }

        // No endpoints at all (a discovered service with none ready yet) is no panic either: nothing to pick.
        var panic = _panicThreshold > 0 && count * 100L < (long)_panicThreshold * _endpoints.Length;
        if (_endpoints.Length > 0 && (count == _endpoints.Length || panic))
        {
            // The full set is the common case to come back to: build its balancer once.
            _all ??= LoadBalancingPolicies.Create(_policy, _endpoints, _random, _hashing);
            return new Snapshot(_all, null, available, count, panic);
        }

        if (count == 0)
        {
            return new Snapshot(null, null, available, 0, Panic: false);
        }

        var indices = new int[count];
        for (int i = 0, n = 0; i < available.Length; i++)
        {
            if (available[i])
            {
                indices[n++] = i;
            }
        }

        var subset = LoadBalancingPolicies.Create(_policy, [.. indices.Select(i => _endpoints[i])], _random, _hashing);
        return new Snapshot(subset, indices, available, count, Panic: false);
    }

    /// <param name="Indices">Maps the balancer's picks to endpoint indices; null when it spans all endpoints.</param>
    private sealed record Snapshot(ILoadBalancer? Balancer, int[]? Indices, bool[] Available, int AvailableCount, bool Panic)
    {
        public int Pick(ulong? keyHash)
        {
            if (Balancer is null)
            {
                return -1;
            }

            var index = keyHash is { } key ? Balancer.Pick(key) : Balancer.Pick();
            return Indices is null ? index : Indices[index];
        }

        public bool Takes(int index) => Panic || Available[index];
    }
}
