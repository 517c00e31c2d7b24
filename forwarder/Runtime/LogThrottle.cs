using System.Collections.Concurrent;

namespace Forwarder.Runtime;

/// <summary>
/// Lets a warning that can repeat once per request or connection through at most once per
/// interval for each subject (a route and service, an endpoint), and counts the ones held back,
/// so an overloaded or failing service writes a line every few seconds that says how many
/// requests it stands for, instead of one line per request.
/// </summary>
internal sealed class LogThrottle(TimeSpan interval)
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<(string, string), Window> _windows = new();
    private readonly long _intervalMs = (long)interval.TotalMilliseconds;

    public LogThrottle()
        : this(DefaultInterval)
    {
    }

    /// <summary>True when a line for the subject may be written now; <paramref name="suppressed"/> is how many were held back since the last.</summary>
    public bool TryLog(string subject, string detail, out long suppressed)
    {
        var window = _windows.GetOrAdd((subject, detail), static _ => new Window());
        var now = Environment.TickCount64;
        var next = Volatile.Read(ref window.Next);
        if (now < next || Interlocked.CompareExchange(ref window.Next, now + _intervalMs, next) != next)
        {
            Interlocked.Increment(ref window.Suppressed);
            suppressed = 0;
            return false;
        }

        suppressed = Interlocked.Exchange(ref window.Suppressed, 0);
        return true;
    }

    private sealed class Window
    {
        public long Next;
        public long Suppressed;
    }
}
