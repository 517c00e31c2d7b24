using Forwarder.LoadBalancing.Health;
using Forwarder.LoadBalancing.Locality;

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
/// <para>
/// With <see cref="LocalityOptions"/> the endpoints sort into priority levels (this node, this
/// zone, the rest): a pick first chooses a level by the levels' health (<see cref="PriorityLoad"/>),
/// then the policy picks within it. Each level has its own balancer, built with the snapshot.
/// </para>
/// </remarks>
public sealed partial class ServiceBalancer
{
    private readonly string _policy;
    private readonly LoadBalancerEndpoint[] _endpoints;
    private readonly IReadOnlyList<EndpointHealth> _health;
    private readonly bool _activeChecks;
    private readonly HashingOptions _hashing;
    private readonly int _panicThreshold;
    private readonly int[] _levels;
    private readonly int _levelCount;
    private readonly int _overprovisioning;
    private readonly LevelPicks? _levelPicks;
    private readonly Level?[] _whole;
    private readonly Random _random;
    private readonly Action<Action> _schedule;
    private readonly Lock _rebuildLock = new();
    private readonly Action _drain;
    private Snapshot _snapshot;
    private int _dirty;
    private int _scheduled;

    /// <param name="health">The endpoints' health, index for index with <paramref name="endpoints"/>.</param>
    /// <param name="activeChecks">Whether active checks run, so an endpoint takes traffic only once it passes them.</param>
    /// <param name="schedule">Runs a rebuild; the thread pool by default, inline in tests.</param>
    /// <param name="locality">Priority levels by locality; null puts every endpoint on one level.</param>
    public ServiceBalancer(
        string policy,
        IReadOnlyList<LoadBalancerEndpoint> endpoints,
        IReadOnlyList<EndpointHealth> health,
        bool activeChecks,
        HashingOptions? hashing = null,
        int panicThreshold = 50,
        Random? random = null,
        Action<Action>? schedule = null,
        LocalityOptions? locality = null)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(health.Count, endpoints.Count);
        if (locality is not null)
        {
            ArgumentOutOfRangeException.ThrowIfNotEqual(locality.Levels.Count, endpoints.Count);
            ArgumentOutOfRangeException.ThrowIfLessThan(locality.OverprovisioningFactor, 1);
            foreach (var level in locality.Levels)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(level);
                ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(level, PriorityLoad.MaxLevels);
            }
        }

        _levels = locality is null ? new int[endpoints.Count] : [.. locality.Levels];
        _levelCount = locality is null ? 1 : Math.Max(1, _levels.DefaultIfEmpty().Max() + 1);

        // One level takes all traffic whatever its health, so overprovisioning only matters between levels;
        // at 100% panic starts exactly below the threshold, as without locality.
        _overprovisioning = locality?.OverprovisioningFactor ?? 100;
        _levelPicks = locality?.Picks;
        _whole = new Level?[_levelCount];
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
    public int Pick() => Volatile.Read(ref _snapshot).Pick(null, _random);

    /// <inheritdoc cref="Pick()"/>
    /// <remarks>Hash policies map equal key hashes to the same endpoint while the available set stays the same.</remarks>
    public int Pick(ulong keyHash) => Volatile.Read(ref _snapshot).Pick(keyHash, _random);

    /// <summary>Whether the endpoint takes traffic in the current snapshot (every endpoint does in panic).</summary>
    public bool Takes(int index) => Volatile.Read(ref _snapshot).Takes(index, _levels[index]);

    /// <summary>The endpoint's priority level (0 without locality).</summary>
    public int LevelOf(int index) => _levels[index];

    /// <summary>Levels the endpoints sort into (1 without locality).</summary>
    public int LevelCount => _levelCount;

    /// <summary>
    /// The endpoint a retry goes to after <paramref name="last"/>: the next one not yet tried,
    /// whatever the policy would repeat; preferably one health lets take traffic (on the nearest
    /// priority level), else any untried one; -1 when every endpoint was tried.
    /// </summary>
    public int NextUntried(IReadOnlySet<int> tried, int last)
    {
        int best = -1, fallback = -1;
        for (var step = 1; step <= Count; step++)
        {
            var candidate = (last + step) % Count;
            if (tried.Contains(candidate))
            {
                continue;
            }

            if (Takes(candidate))
            {
                if (best < 0 || _levels[candidate] < _levels[best])
                {
                    best = candidate;
                }
            }
            else if (fallback < 0)
            {
                fallback = candidate;
            }
        }

        return best >= 0 ? best : fallback;
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

        Span<int> sizes = stackalloc int[_levelCount];
        Span<int> up = stackalloc int[_levelCount];
        for (var i = 0; i < available.Length; i++)
        {
            sizes[_levels[i]]++;
            up[_levels[i]] += available[i] ? 1 : 0;
        }

        Span<int> load = stackalloc int[_levelCount];
        Span<bool> panic = stackalloc bool[_levelCount];
        PriorityLoad.Compute(sizes, up, _overprovisioning, _panicThreshold, load, panic);
        var levels = new Level?[_levelCount];
        var bounds = new int[_levelCount];
        var anyPanic = false;
        for (int level = 0, bound = 0; level < _levelCount; level++)
        {
            bound += load[level];
            bounds[level] = bound;
            levels[level] = load[level] == 0 ? null : BuildLevel(level, sizes[level], up[level], available, panic[level]);
            anyPanic |= levels[level]?.Panic == true;
        }

        return new Snapshot(levels, bounds, available, count, anyPanic, _levelPicks);
    }

    /// <summary>The balancer for one level's share of traffic: over its available endpoints, or all of them in panic.</summary>
    private Level BuildLevel(int level, int size, int up, bool[] available, bool panic)
    {
        var whole = panic || up == size;
        var indices = new int[whole ? size : up];
        for (int i = 0, n = 0; i < available.Length; i++)
        {
            if (_levels[i] == level && (whole || available[i]))
            {
                indices[n++] = i;
            }
        }

        if (whole)
        {
            // The whole level is the common case to come back to: build its balancer once.
            _whole[level] ??= new Level(LoadBalancingPolicies.Create(_policy, [.. indices.Select(i => _endpoints[i])], _random, _hashing), indices, Panic: false);
            return panic ? _whole[level]! with { Panic = true } : _whole[level]!;
        }

        return new Level(LoadBalancingPolicies.Create(_policy, [.. indices.Select(i => _endpoints[i])], _random, _hashing), indices, Panic: false);
    }
}
