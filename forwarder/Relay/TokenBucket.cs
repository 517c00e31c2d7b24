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

    /// <summary>Takes <paramref name="amount"/> if the bucket holds it (true), else takes nothing and runs into no debt (false): for requests refused, not delayed.</summary>
    public bool TryTake(long amount)
    {
        lock (_lock)
        {
            Refill(Stopwatch.GetTimestamp());
            if (_tokens < amount)
            {
                return false;
            }

            _tokens -= amount;
            return true;
        }
    }

    /// <summary>Takes <paramref name="bytes"/> and says how long to wait before sending them (zero within budget).</summary>
    public TimeSpan Take(long bytes)
    {
        lock (_lock)
        {
            Refill(Stopwatch.GetTimestamp());
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / BytesPerSecond);
        }
    }

    private void Refill(long now)
    {
        _tokens = Math.Min(BytesPerSecond, _tokens + (Stopwatch.GetElapsedTime(_stamp, now).TotalSeconds * BytesPerSecond));
        _stamp = now;
    }
}
