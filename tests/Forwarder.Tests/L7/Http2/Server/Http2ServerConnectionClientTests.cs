using System.Text.RegularExpressions;
using Forwarder.L7.Http2.Server;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>The server connection against real HTTP/2 clients: curl, nghttp and h2load (nghttp2), over loopback.</summary>
public sealed class Http2ServerConnectionClientTests
{
    [Fact]
    public async Task RunAsync_CurlGet_AnswersTheFixedBody()
    {
        await using var server = await Http2TestServer.StartAsync();

        var (exit, output, error) = await PeerProcess.RunAsync("curl", ["-sS", "--http2-prior-knowledge", "-D", "-", server.Url("/fixed")]);

        Assert.True(exit == 0, error);
        Assert.StartsWith("HTTP/2 200", output, StringComparison.Ordinal);
        Assert.Contains("content-type: text/plain", output, StringComparison.Ordinal);
        Assert.EndsWith("hello from h2", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_NghttpPostLargerThanEveryWindow_EchoesItWhole()
    {
        await using var server = await Http2TestServer.StartAsync(new Http2ServerOptions { InitialStreamWindowSize = 65_535, ConnectionWindowSize = 65_535 });
        var body = RandomBody(300_017);
        var input = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(input, body);

            var (exit, output, error) = await PeerProcess.RunAsync("nghttp", ["-s", "-d", input, server.Url("/echo")]);

            Assert.True(exit == 0, error);
            Assert.Matches(@"\s200\s+292K\s", output);
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Fact]
    public async Task RunAsync_CurlPostOfMegabytes_EchoesItWhole()
    {
        await using var server = await Http2TestServer.StartAsync();
        var body = RandomBody(3_000_017);
        var input = Path.GetTempFileName();
        var echoed = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(input, body);

            var (exit, _, error) = await PeerProcess.RunAsync("curl", ["-sS", "--http2-prior-knowledge", "--data-binary", "@" + input, "-o", echoed, server.Url("/echo")]);

            Assert.True(exit == 0, error);
            var echo = await File.ReadAllBytesAsync(echoed);
            Assert.Equal(body.Length, echo.Length);
            Assert.True(body.AsSpan().SequenceEqual(echo), "the echo differs from the body sent");
        }
        finally
        {
            File.Delete(input);
            File.Delete(echoed);
        }
    }

    [Fact]
    public async Task RunAsync_NghttpManyConcurrentStreams_AllAnswered()
    {
        // nghttp sends its first 100 requests before our SETTINGS can arrive: with a lower limit some would be refused.
        await using var server = await Http2TestServer.StartAsync(new Http2ServerOptions { MaxConcurrentStreams = 100 });

        var (exit, output, error) = await PeerProcess.RunAsync("nghttp", ["-n", "-s", "-m", "300", server.Url("/big/40000")]);

        Assert.True(exit == 0, error + output);
        Assert.Equal(300, Regex.Matches(output, @"\s200\s").Count);
        await Eventually.TrueAsync(() => server.Handler.Completed == 300, "every stream's handler completed");
    }

    [Fact]
    public async Task RunAsync_NghttpLargeResponsesSideBySide_BothWhole()
    {
        await using var server = await Http2TestServer.StartAsync();

        var (exit, output, error) = await PeerProcess.RunAsync("nghttp", ["-s", "-w", "16", "-W", "16", server.Url("/big/2000000"), server.Url("/big/1000000")]);

        Assert.True(exit == 0, error);
        Assert.Equal(2, Regex.Matches(output, @"\s200\s").Count);
    }

    [Fact]
    public async Task RunAsync_H2load_AllRequestsSucceed()
    {
        await using var server = await Http2TestServer.StartAsync();

        var (exit, output, error) = await PeerProcess.RunAsync("h2load", ["-n", "20000", "-c", "4", "-m", "32", server.Url("/fixed")]);

        Assert.True(exit == 0, error);
        Assert.Matches(@"requests: 20000 total, 20000 started, 20000 done, 20000 succeeded", output);
    }

    private static byte[] RandomBody(int length)
    {
        var body = new byte[length];
        new Random(7).NextBytes(body);
        return body;
    }
}
