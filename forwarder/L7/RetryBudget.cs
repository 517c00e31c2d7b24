namespace Forwarder.L7;

/// <summary>
/// Envoy's retry budget for one route: retries in flight may not exceed a share of the requests
/// in flight (with a floor, so a quiet route can still retry). When a service starts failing,
/// retries then add a bounded amount of load instead of multiplying it.
/// </summary>
internal sealed class RetryBudget(int percent, int minConcurrent)
{
    private int _requests;
    private int _retries;

    public void RequestStarted() => Interlocked.Increment(ref _requests);

    public void RequestEnded() => Interlocked.Decrement(ref _requests);

    /// <summary>Takes a retry from the budget; false when it is spent. A taken retry is given back with <see cref="RetryEnded"/>.</summary>
    public bool TryStartRetry()
    {
        var allowed = Math.Max(minConcurrent, (int)((long)Volatile.Read(ref _requests) * percent / 100));
        if (Interlocked.Increment(ref _retries) <= allowed)
        {
            return true;
        }

        Interlocked.Decrement(ref _retries);
        return false;
    }

    public void RetryEnded() => Interlocked.Decrement(ref _retries);
}
