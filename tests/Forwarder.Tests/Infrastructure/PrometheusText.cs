using System.Buffers;
using System.Text;
using Forwarder.Admin;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.Tests.Infrastructure;

/// <summary>The /metrics exposition rendered whole into a string, as a test reads it.</summary>
internal static class PrometheusText
{
    public static string Render(ForwarderMetrics metrics, ProxyRuntime runtime)
    {
        var buffer = new ArrayBufferWriter<byte>();

        // Enumerating writes it: each step is one series group.
        _ = PrometheusWriter.Render(new MetricsText(buffer), metrics, runtime, openConnections: 0).Count();
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
