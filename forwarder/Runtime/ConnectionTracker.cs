using System.Collections.Concurrent;

namespace Forwarder.Runtime;

/// <summary>A connection the tracker can time out for idleness or abort at the end of a drain.</summary>
internal interface ITrackedConnection
{
    /// <summary>Timestamp (of the tracker's <see cref="TimeProvider"/>) of the last byte moved.</summary>
    long LastActivity { get; }

    /// <summary>Zero disables the idle timeout.</summary>
    TimeSpan IdleTimeout { get; }

    void Abort(string reason);

    /// <summary>Called on every tick with the tracker's current timestamp, to fire a deadline that has passed.</summary>
    void CheckDeadline(long now);
}

/// <summary>
/// Knows every open connection: closes those idle for longer than their timeout and fires
/// deadlines that have passed (both checked every <see cref="Tick"/>, so a timeout fires within
/// that of its due time: no timer per connection or per request, and a check is a few reads per
/// connection), and lets shutdown wait for the rest to finish.
/// </summary>
internal sealed class ConnectionTracker : IDisposable
{
    /// <summary>Fine enough that a 2 s timeout fires by 2.1 s even when the tick itself runs late.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);

    private readonly ConcurrentDictionary<ITrackedConnection, byte> _connections = new(ReferenceEqualityComparer.Instance);
    private readonly TimeProvider _time;
    private readonly ITimer _idleTimer;
    private TaskCompletionSource? _emptied;

    public ConnectionTracker(TimeProvider time)
    {
        _time = time;
        _idleTimer = time.CreateTimer(_ => CloseIdle(), null, Tick, Tick);
    }

    public int Count => _connections.Count;

    public long Now => _time.GetTimestamp();

    /// <summary>The timestamp <paramref name="delay"/> from now, for <see cref="ClientConnection.ArmDeadline"/>.</summary>
    public long DeadlineAfter(TimeSpan delay) => DeadlineAfter(Now, delay);

    /// <summary>The deadline <paramref name="delay"/> after <paramref name="from"/>, a recent value of <see cref="Now"/> (saving a clock read).</summary>
    public long DeadlineAfter(long from, TimeSpan delay) => from + (long)(delay.TotalSeconds * _time.TimestampFrequency);

    /// <summary>Time until <paramref name="timestamp"/> (a deadline), never negative.</summary>
    public TimeSpan Until(long timestamp) => TimeSpan.FromSeconds(Math.Max(0, timestamp - Now) / (double)_time.TimestampFrequency);

    /// <summary>A one-shot timer on the tracker's clock, unarmed, for a deadline a tick is too coarse for.</summary>
    public ITimer CreateTimer(TimerCallback callback, object? state) => _time.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

    /// <summary>Time since <paramref name="timestamp"/>, a value of <see cref="Now"/>.</summary>
    public TimeSpan Since(long timestamp) => _time.GetElapsedTime(timestamp);

    public void Add(ITrackedConnection connection) => _connections.TryAdd(connection, 0);

    public void Remove(ITrackedConnection connection)
    {
        if (_connections.TryRemove(connection, out _) && _connections.IsEmpty)
        {
            Volatile.Read(ref _emptied)?.TrySetResult();
        }
    }

    /// <summary>Completes when no connection is left, or when <paramref name="cancellationToken"/> fires.</summary>
    public async Task WaitUntilEmptyAsync(CancellationToken cancellationToken)
    {
        var emptied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _emptied, emptied);
        if (_connections.IsEmpty)
        {
            return;
        }

        await emptied.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void AbortAll(string reason)
    {
        foreach (var connection in _connections.Keys)
        {
            connection.Abort(reason);
        }
    }

    public void Dispose() => _idleTimer.Dispose();

    private void CloseIdle()
    {
        var now = _time.GetTimestamp();

        // The dictionary itself, not its Keys (a fresh copy of every key on each tick).
        foreach (var (connection, _) in _connections)
        {
            connection.CheckDeadline(now);
            var timeout = connection.IdleTimeout;
            if (timeout > TimeSpan.Zero && _time.GetElapsedTime(connection.LastActivity, now) >= timeout)
            {
                connection.Abort("idle timeout");
            }
        }
    }
}
