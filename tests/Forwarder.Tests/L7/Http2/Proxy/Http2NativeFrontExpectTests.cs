using System.Globalization;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Server;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// Expect on the native HTTP/2 front, as on the HTTP/1 one: a client that sends its HEADERS with
/// expect: 100-continue and waits for a 100 before its DATA (curl, told to wait up to a minute)
/// gets the 100 from the proxy once the upstream stream is open; any other expectation is 417.
/// </summary>
public sealed class Http2NativeFrontExpectTests
{
    [Fact]
    public async Task ExpectContinue_GetsA100_ThenTheBodyIsForwarded_WithoutTheExpectation()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            await context.Response.WriteAsync($"{body.Length} expect=[{context.Request.Headers.Expect}]");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native"));

        var (exit, output, error) = await CurlAsync(forwarder, "100-continue");

        Assert.True(exit == 0, error);
        Assert.Contains("< HTTP/2 100", error, StringComparison.Ordinal);
        Assert.Equal("5000 expect=[] 200", output);
    }

    [Fact]
    public async Task UnknownExpectation_Is417_NeverReachesTheUpstream()
    {
        var served = 0;
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            Interlocked.Increment(ref served);
            return context.Response.WriteAsync("served");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native"));

        // No body: with one, curl sends it at once and may read the stream's reset (the front
        // stops the unwanted upload after its 417) before the 417 itself.
        var (exit, output, error) = await PeerProcess.RunAsync(
            "curl",
            ["-sS", "-v", "--http2-prior-knowledge", "--max-time", "90", "-H", "Expect: something-else", "-w", " %{http_code}",
                $"http://127.0.0.1:{forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture)}/upload"],
            timeout: TimeSpan.FromSeconds(120));

        Assert.True(exit == 0, error);
        Assert.EndsWith(" 417", output, StringComparison.Ordinal);
        Assert.Equal(0, Volatile.Read(ref served));
    }

    /// <summary>POSTs 5000 bytes with the expectation; curl waits up to 60 s for a 100 before sending them.</summary>
    private static Task<(int ExitCode, string Output, string Error)> CurlAsync(RunningForwarder forwarder, string expectation)
        => PeerProcess.RunAsync(
            "curl",
            ["-sS", "-v", "--http2-prior-knowledge", "--expect100-timeout", "60", "--max-time", "90", "-H", $"Expect: {expectation}", "--data-binary", "@-", "-w", " %{http_code}",
                $"http://127.0.0.1:{forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture)}/upload"],
            stdin: new string('b', 5000),
            timeout: TimeSpan.FromSeconds(120));
}
