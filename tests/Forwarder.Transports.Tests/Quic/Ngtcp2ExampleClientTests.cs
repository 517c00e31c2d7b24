using System.Diagnostics;
using System.Globalization;
using System.Net;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>Debian's ngtcp2 example client (package ngtcp2-client, /usr/bin/gtlsclient) against our listener.</summary>
public sealed class Ngtcp2ExampleClientTests : IDisposable
{
    private const string Binary = "/usr/bin/gtlsclient";
    private const string NodeName = "node-c.mesh.test";
    private readonly QuicTestPki _pki = new(NodeName);

    [Fact]
    public async Task Listener_Http3GetFromNgtcp2Client_IsAnswered() => await GetAsync();

    [Fact]
    public async Task Listener_Ngtcp2ClientStartingWithAnUnknownVersion_NegotiatesV1AndIsAnswered()
    {
        // gtlsclient sends its first Initial as version 0x1a2a3a4a; only our Version Negotiation tells it v1 works.
        var output = await GetAsync("--version=0x1a2a3a4a", "--preferred-versions=v1");

        Assert.Contains("type=VN", output);
        Assert.Contains("Client selected version 0x1", output);
    }

    /// <summary>An HTTP/3 GET by gtlsclient, with <paramref name="extraArguments"/>, answered by our listener; returns its output.</summary>
    private async Task<string> GetAsync(params string[] extraArguments)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: apt-get install ngtcp2-client");
        var options = new QuicServerOptions { Alpn = "h3", CertificateFile = _pki.ServerCertificateFile, KeyFile = _pki.ServerKeyFile };
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), options);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var body = "answered by the forwarder's QUIC listener " + Guid.NewGuid();
        var serving = Task.Run(async () =>
        {
            await using var connection = await listener.AcceptAsync(cts.Token);
            var stream = await connection.AcceptStreamAsync(cts.Token);
            var buffer = new byte[4096];
            while (await stream.ReadAsync(buffer, cts.Token) > 0)
            {
                // The request is one HEADERS frame and FIN; its content does not matter here.
            }

            await stream.WriteAsync(MinimalHttp3.ResponseHeaders(), cts.Token);
            await stream.WriteAsync(MinimalHttp3.Data(System.Text.Encoding.ASCII.GetBytes(body)), cts.Token);
            stream.CompleteWrites();
            // Keep the connection until the client has what it needs and closes.
            await connection.AcceptStreamAsync(cts.Token).AsTask().ContinueWith(_ => { }, TaskScheduler.Default);
        }, cts.Token);

        var port = listener.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture);
        var start = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        var downloads = Directory.CreateTempSubdirectory("quic-download-").FullName;
        foreach (var argument in (string[])["--exit-on-all-streams-close", "--timeout=20s", $"--download={downloads}", .. extraArguments,
                     "127.0.0.1", port, $"https://{NodeName}:{port}/hello.txt"])
        {
            start.ArgumentList.Add(argument);
        }

        using var client = Process.Start(start)!;
        var stdout = client.StandardOutput.ReadToEndAsync(cts.Token);
        var stderr = client.StandardError.ReadToEndAsync(cts.Token);
        await client.WaitForExitAsync(cts.Token);
        var output = await stdout + await stderr;

        Assert.True(client.ExitCode == 0, $"gtlsclient exited {client.ExitCode}: {output}");
        Assert.Contains("[:status: 200]", output);
        var downloaded = Path.Combine(downloads, "hello.txt");
        Assert.True(File.Exists(downloaded), $"gtlsclient saved no body: {output}");
        Assert.Equal(body, await File.ReadAllTextAsync(downloaded, cts.Token));
        Directory.Delete(downloads, recursive: true);
        await cts.CancelAsync();
        await serving.ContinueWith(_ => { }, TaskScheduler.Default);
        return output;
    }

    public void Dispose() => _pki.Dispose();
}
