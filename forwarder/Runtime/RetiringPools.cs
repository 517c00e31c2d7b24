using Forwarder.L7.Upstream;

namespace Forwarder.Runtime;

/// <summary>
/// Upstream pools a reload dropped, still finishing their HTTP/2 streams: each drain is tracked
/// here so shutdown aborts what is left and awaits it, rather than leaving sockets and a Task behind.
/// </summary>
internal sealed class RetiringPools : IDisposable
{
    private readonly CancellationTokenSource _abort = new();
    private readonly List<Task> _draining = [];

    /// <summary>Starts closing <paramref name="pool"/>; its streams in flight go on.</summary>
    public void Retire(UpstreamConnectionPool pool)
    {
        var draining = pool.RetireAsync(_abort.Token);
        lock (_draining)
        {
            // Pruned here, not on completion: RetireAsync never throws, so nothing goes unobserved.
            _draining.RemoveAll(static t => t.IsCompleted);
            _draining.Add(draining);
        }
    }

    /// <summary>Aborts the streams still draining and waits until their connections are closed.</summary>
    public async Task AbortAsync()
    {
        await _abort.CancelAsync().ConfigureAwait(false);
        Task[] draining;
        lock (_draining)
        {
            draining = [.. _draining];
            _draining.Clear();
        }

        await Task.WhenAll(draining).ConfigureAwait(false);
    }

    public void Dispose() => _abort.Dispose();
}
