using System.Diagnostics;
using System.Globalization;

namespace Forwarder.Transports.Diagnostics;

/// <summary>
/// A fixed busy wait on the forwarding path, for proving that the latency gate notices a slowdown.
/// Calls compile only in the DelayInjection configuration; the wait is FORWARDER_INJECTED_DELAY_US
/// microseconds (fractions allowed), read once.
/// </summary>
public static class InjectedDelay
{
    private static readonly long s_ticks = double.TryParse(Environment.GetEnvironmentVariable("FORWARDER_INJECTED_DELAY_US"), NumberStyles.Float, CultureInfo.InvariantCulture, out var microseconds)
        ? (long)(microseconds * Stopwatch.Frequency / 1_000_000)
        : 0;

    [Conditional("FORWARDER_DELAY_INJECTION")]
    public static void Apply()
    {
        if (s_ticks == 0)
        {
            return;
        }

        // Spinning, not sleeping: a sleep's granularity would swamp a few microseconds.
        var until = Stopwatch.GetTimestamp() + s_ticks;
        while (Stopwatch.GetTimestamp() < until)
        {
            Thread.SpinWait(10);
        }
    }
}
