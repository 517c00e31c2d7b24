using System.Globalization;

namespace Forwarder.Bench.Gate;

/// <summary>
/// One forwarder binary whose tcp and http listeners a gate session runs: the base and the current
/// build, or when calibrating a second copy of one or a DelayInjection build.
/// </summary>
/// <param name="Name">Label in the log and in the proxies' names (base, current).</param>
/// <param name="ChunkDelayMicroseconds">DelayInjection builds: the tcp listener's busy wait per forwarded chunk.</param>
/// <param name="RequestDelayMicroseconds">DelayInjection builds: the http listener's busy wait per request.</param>
/// <param name="Freeze">Stop the build's proxies (SIGSTOP) now and then, as a stand-in for a GC or lock pause.</param>
internal sealed record GateBuild(string Name, string Path, double? ChunkDelayMicroseconds = null, double? RequestDelayMicroseconds = null, GateFreeze? Freeze = null)
{
    /// <summary>The listener's environment: the injected wait, when this build has one.</summary>
    public IReadOnlyDictionary<string, string>? Variables(bool http)
        => (http ? RequestDelayMicroseconds : ChunkDelayMicroseconds) is { } delay
            ? new Dictionary<string, string> { ["FORWARDER_INJECTED_DELAY_US"] = delay.ToString("0.###", CultureInfo.InvariantCulture) }
            : null;
}

/// <summary>A pause of <paramref name="Length"/> every <paramref name="Every"/>.</summary>
internal sealed record GateFreeze(TimeSpan Length, TimeSpan Every);
