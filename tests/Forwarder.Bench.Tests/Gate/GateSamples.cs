using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

/// <summary>Builds gate samples with chosen overheads and a deterministic spread between repetitions.</summary>
internal static class GateSamples
{
    /// <param name="p50">Proxy p50 / direct p50 for both proxy arms.</param>
    /// <param name="spread">Each repetition's figures vary by up to this share, in a fixed pseudo-random pattern.</param>
    /// <param name="rssMiB">Every proxy arm's resident memory; null for samples recorded before memory was measured.</param>
    public static List<GateSample> Make(int reps, double p50 = 1.8, double p99 = 1.4, double throughput = 1.9, double spread = 0.01, int seed = 1, double? l7P50 = null, double openP99 = 1.5, double? rssMiB = 60)
    {
        var random = new Random(seed);
        double Jitter() => 1 + ((random.NextDouble() - 0.5) * 2 * spread);
        List<GateSample> samples = [];
        for (var rep = 1; rep <= reps; rep++)
        {
            // The h2c reference is another protocol's cost: its own figures, which the HTTP/2 arm's ratios divide by.
            var http1 = new GateSample(GateMetric.Direct, rep, 20 * Jitter(), 60 * Jitter(), 70_000 * Jitter(), 100 * Jitter());
            var h2 = new GateSample(GateMetric.DirectH2, rep, 30 * Jitter(), 90 * Jitter(), 50_000 * Jitter(), 140 * Jitter());
            samples.Add(http1);
            samples.Add(h2);
            foreach (var arm in GateMetric.ProxyArms)
            {
                var direct = arm == "forwarder-h2" ? h2 : http1;
                var armP50 = arm == "forwarder-l7" && l7P50 is { } l7 ? l7 : p50;
                samples.Add(new GateSample(arm, rep, direct.P50Us * armP50 * Jitter(), direct.P99Us * p99 * Jitter(), direct.MaxRps / throughput * Jitter(), direct.OpenP99Us * openP99 * Jitter(), rssMiB * Jitter()));
            }
        }

        return samples;
    }
}
