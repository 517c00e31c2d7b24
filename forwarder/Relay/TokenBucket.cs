using System.Diagnostics;

namespace Forwarder.Relay;

/// <summary>
/// A byte-rate limit: it holds up to one second's worth of bytes, refilled at the rate, and a
/// sender that takes more than it holds goes into debt and waits until the debt is paid. So a
/// node pushing through the relay gets a one-second burst, then the configured rate.
/// </summary>
internal sealed class TokenBucket(long bytesPerSecond)
{
    private readonly Lock _lock = new();
    private double _tokens = bytesPerSecond;
    private long _stamp = Stopwatch.GetTimestamp();

    public long BytesPerSecond { get; } = bytesPerSecond;

    /// <summary>Takes <paramref name="bytes"/> and says how long to wait before sending them (zero within budget).</summary>
    public TimeSpan Take(long bytes)
    {
        lock (_lock)
        {
            var now = Stopwatch.GetTimestamp();
            _tokens = Math.Min(BytesPerSecond, _tokens + (Stopwatch.GetElapsedTime(_stamp, now).TotalSeconds * BytesPerSecond));
            _stamp = now;
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / BytesPerSecond);
        }
    }
}
