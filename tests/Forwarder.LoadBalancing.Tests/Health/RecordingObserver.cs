using System.Collections.Concurrent;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

/// <summary>Records health transitions and lets a test wait for one.</summary>
internal sealed class RecordingObserver : IHealthObserver
{
    private readonly ConcurrentQueue<string> _events = new();
    private readonly Lock _lock = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource Done)> _waiters = [];

    public IReadOnlyList<string> Events => [.. _events];

    public void CheckStateChanged(EndpointHealth endpoint, HealthCheckState state) => Add($"{endpoint.Id} {state.ToString().ToLowerInvariant()}");

    public void Ejected(EndpointHealth endpoint, TimeSpan duration) => Add($"{endpoint.Id} ejected {duration.TotalSeconds:0.###}s");

    public void Returned(EndpointHealth endpoint) => Add($"{endpoint.Id} returned");

    /// <summary>Completes when an event equal to <paramref name="text"/> has been recorded (before or after the call).</summary>
    public Task WaitForAsync(string text, TimeSpan? timeout = null)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_events.Contains(text))
            {
                return Task.CompletedTask;
            }

            _waiters.Add((e => e == text, done));
        }

        return done.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
    }

    private void Add(string text)
    {
        lock (_lock)
        {
            _events.Enqueue(text);
            foreach (var waiter in _waiters.Where(w => w.Match(text)).ToArray())
            {
                waiter.Done.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }
}
