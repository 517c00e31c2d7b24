namespace Forwarder.Metrics;

/// <summary>
/// HTTP counters for one route or one service: requests, responses by status class, retries,
/// and the upstream latency (request head sent to response head received).
/// </summary>
internal sealed class HttpMetrics
{
    /// <summary>Label values of the status classes, by <c>status / 100</c>.</summary>
    public static readonly string[] StatusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"];

    private readonly long[] _responses = new long[StatusClasses.Length];
    private long _requests;
    private long _retries;
    private long _aborted;

    public long Requests => Volatile.Read(ref _requests);

    public long Retries => Volatile.Read(ref _retries);

    /// <summary>Requests that ended without a complete response: the client left, or the upstream failed mid-response.</summary>
    public long Aborted => Volatile.Read(ref _aborted);

    public LatencyHistogram UpstreamLatency { get; } = new();

    public long Responses(int statusClass) => Volatile.Read(ref _responses[statusClass]);

    public void RequestStarted() => Interlocked.Increment(ref _requests);

    public void Responded(int status)
    {
        if (status is >= 100 and < 600)
        {
            Interlocked.Increment(ref _responses[(status / 100) - 1]);
        }
    }

    public void Retried() => Interlocked.Increment(ref _retries);

    public void Abort() => Interlocked.Increment(ref _aborted);
}
