using System.Net;

namespace Forwarder.Bench.Load;

/// <summary>What <c>bench load</c> was asked to do.</summary>
/// <param name="Url">HTTP target; null in TCP echo mode.</param>
/// <param name="Tcp">TCP echo target; null in HTTP mode.</param>
/// <param name="Size">Bytes per TCP echo exchange.</param>
/// <param name="Rate">Requests a second, open loop; null runs closed loop (as fast as the connections go).</param>
/// <param name="RampTo">Open loop: ramp the rate linearly from <paramref name="Rate"/> to this over the duration.</param>
/// <param name="Threads">Socket engine threads for the generator (like wrk's -t); applied at process start.</param>
/// <param name="Udp">Udp echo target (a datagram of <paramref name="Size"/> bytes out, one back); null otherwise.</param>
/// <param name="HlogPath">Write each second's corrected latency here as an HdrHistogram interval log.</param>
/// <param name="Close">HTTP: every request asks for <c>Connection: close</c> and goes on a new connection.</param>
/// <param name="Http2">HTTP: speak h2c (HTTP/2 with prior knowledge) rather than HTTP/1.1, one stream in flight per connection.</param>
internal sealed record LoadOptions(
    Uri? Url,
    EndPoint? Tcp,
    int Size,
    double? Rate,
    double? RampTo,
    int Connections,
    TimeSpan Duration,
    TimeSpan Warmup,
    int Threads,
    TimeSpan Timeout,
    string? HgrmPath,
    string? JsonPath,
    EndPoint? Udp = null,
    string? HlogPath = null,
    bool Close = false,
    bool Http2 = false)
{
    public string Target => Url?.ToString() ?? (Udp is { } udp ? $"udp://{udp}" : $"tcp://{Tcp}");

    public bool OpenLoop => Rate is not null;
}
