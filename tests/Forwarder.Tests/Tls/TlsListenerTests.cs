using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.Tls;

/// <summary>
/// TLS on http listeners, with certificates from a test authority written to PEM files:
/// HTTP/1.1 and HTTP/2 chosen by ALPN, certificates chosen by SNI, files reloaded when they
/// change (and a broken file ignored), and clients that never finish a handshake closed.
/// </summary>
public sealed class TlsListenerTests : IDisposable
{
    private readonly TestCertificates _authority = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-tls-").FullName;

    public void Dispose()
    {
        _authority.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Http11OverTls_IsForwarded_WithHttpsAsTheForwardedProto_OnOneKeptAliveConnection()
    {
        _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("secret");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend)));
        using var client = Client(forwarder, HttpVersion.Version11);

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync(new Uri("https://app.test/data"));
            Assert.Equal(HttpVersion.Version11, response.Version);
            Assert.Equal("secret", await response.Content.ReadAsStringAsync());
        }

        Assert.All(backend.Requests, r => Assert.Equal("https", r.Header("x-forwarded-proto")));
        var listener = forwarder.Metrics.Listener("web");
        Assert.Equal(1, listener.TlsHttp11);
        Assert.Equal(1, listener.Total);
    }

    [Fact]
    public async Task Http2OverTls_IsChosenByAlpn_AndForwarded()
    {
        _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("over h2");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend)));
        using var client = Client(forwarder, HttpVersion.Version20);

        using var response = await client.GetAsync(new Uri("https://app.test/h2"));
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("over h2", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(backend.Requests);
        Assert.Equal("https", seen.Header("x-forwarded-proto"));
        Assert.Equal(1, forwarder.Metrics.Listener("web").TlsHttp2);
    }

    [Fact]
    public async Task Http2OverTls_ToAnHttp2Service_IsServedByTheNativeEngine_WithHttpsAsTheForwardedProto()
    {
        _authority.Write(_directory, "site", "app.test");
        var proto = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            proto.TrySetResult(context.Request.Headers["x-forwarded-proto"].ToString());
            return context.Response.WriteAsync("native over tls");
        });
        var service = $"app:\n  http: {{ version: \"2\" }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), service));
        using var client = Client(forwarder, HttpVersion.Version20);

        using var response = await client.GetAsync(new Uri("https://app.test/h2"));
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("native over tls", await response.Content.ReadAsStringAsync());
        Assert.Equal("2 forwarder", string.Join(",", response.Headers.GetValues("via")));
        Assert.Equal("https", await proto.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(1, forwarder.Metrics.Listener("web").TlsHttp2);
    }

    [Fact]
    public async Task Curl_TrustingOnlyTheAuthority_SpeaksBothProtocols()
    {
        _authority.Write(_directory, "site", "app.test");
        var authority = _authority.WriteAuthority(_directory);
        await using var backend = HttpTestBackend.Text("hello curl");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend)));
        var port = forwarder.EndPoint("web").Port;

        foreach (var (flag, version) in new[] { ("--http1.1", "1.1"), ("--http2", "2") })
        {
            var (exit, output) = await RunCurlAsync(flag, "--cacert", authority, "--resolve", $"app.test:{port}:127.0.0.1", "-w", "\n%{http_version} %{response_code}", $"https://app.test:{port}/");
            Assert.True(exit == 0, $"curl {flag} failed ({exit}): {output}");
            Assert.Equal($"hello curl\n{version} 200", output);
        }
    }

    [Fact]
    public async Task TheCertificate_IsChosenByServerName_AndTheFirstServesUnknownNames()
    {
        var alpha = _authority.Write(_directory, "alpha", "alpha.test");
        var beta = _authority.Write(_directory, "beta", "beta.test", "*.beta.test");
        await using var backend = HttpTestBackend.Text("ok");
        var tls = $"tls:\n  certificates:\n    - {{ certificate: {Pem("alpha")}, key: {Key("alpha")} }}\n    - {{ certificate: {Pem("beta")}, key: {Key("beta")} }}";
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(tls, Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");

        Assert.Equal(alpha.Thumbprint, await PresentedThumbprintAsync(web, "alpha.test"));
        Assert.Equal(beta.Thumbprint, await PresentedThumbprintAsync(web, "beta.test"));
        Assert.Equal(beta.Thumbprint, await PresentedThumbprintAsync(web, "www.beta.test"));
        Assert.Equal(alpha.Thumbprint, await PresentedThumbprintAsync(web, "other.test"));
    }

    [Fact]
    public async Task ChangedFiles_AreServedWithoutARestart_AndABrokenPairLeavesTheLastGoodOne()
    {
        var first = _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");
        Assert.Equal(first.Thumbprint, await PresentedThumbprintAsync(web, "app.test"));

        var second = _authority.Write(_directory, "site", "app.test");
        await Eventually.TrueAsync(async () => await PresentedThumbprintAsync(web, "app.test") == second.Thumbprint, "the rewritten certificate is presented");

        // A deploy caught half-way: a certificate without its key. Handshakes go on with the last
        // good pair through several file checks (one a second at most).
        await File.WriteAllTextAsync(Path.Combine(_directory, "site.pem"), _authority.Write(Directory.CreateTempSubdirectory("other-").FullName, "x", "x.test").ExportCertificatePem());
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(2.5))
        {
            Assert.Equal(second.Thumbprint, await PresentedThumbprintAsync(web, "app.test"));
        }

        var third = _authority.Write(_directory, "site", "app.test");
        await Eventually.TrueAsync(async () => await PresentedThumbprintAsync(web, "app.test") == third.Thumbprint, "the repaired pair is presented");
    }

    [Fact]
    public async Task ASwappedSymbolicLink_AsKubernetesSecretVolumesDo_IsFollowed()
    {
        // The config names data/site.pem; data is a link to a versioned folder, replaced by rename.
        var first = _authority.Write(Directory.CreateDirectory(Path.Combine(_directory, "v1")).FullName, "site", "app.test");
        var second = _authority.Write(Directory.CreateDirectory(Path.Combine(_directory, "v2")).FullName, "site", "app.test");
        var data = Path.Combine(_directory, "data");
        Directory.CreateSymbolicLink(data, Path.Combine(_directory, "v1"));
        await using var backend = HttpTestBackend.Text("ok");
        var tls = $"tls: {{ certificate: {Path.Combine(data, "site.pem")}, key: {Path.Combine(data, "site.key")} }}";
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(tls, Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");
        Assert.Equal(first.Thumbprint, await PresentedThumbprintAsync(web, "app.test"));

        var next = Path.Combine(_directory, "data.next");
        Directory.CreateSymbolicLink(next, Path.Combine(_directory, "v2"));
        using (var move = Process.Start("mv", ["-T", next, data]))
        {
            await move.WaitForExitAsync();
            Assert.Equal(0, move.ExitCode);
        }

        await Eventually.TrueAsync(async () => await PresentedThumbprintAsync(web, "app.test") == second.Thumbprint, "the certificate behind the swapped link is presented");
    }

    [Fact]
    public async Task AClientThatNeverFinishesItsHandshake_IsClosed_AndPlainTextIsRefused_WhileOthersAreServed()
    {
        _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site", "handshakeTimeout: 300ms"), Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");

        using var silent = await SocketClient.ConnectAsync(web);
        using var plain = await SocketClient.ConnectAsync(web);
        await HttpTestBackend.SendAsync(plain, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n");
        using var client = Client(forwarder, HttpVersion.Version11);
        Assert.Equal("ok", await client.GetStringAsync(new Uri("https://app.test/")));

        Assert.True(await SocketClient.ClosedAsync(silent), "the silent client is closed after the handshake timeout");
        Assert.True(await SocketClient.ClosedAsync(plain), "the plain-text client is closed");
        await Eventually.TrueAsync(() => forwarder.Metrics.Listener("web").TlsFailed == 2, "both failures are counted");
        Assert.Equal("https", Assert.Single(backend.Requests).Header("x-forwarded-proto"));
    }

    [Fact]
    public async Task Metrics_ExposeHandshakesAndCertificateExpiry()
    {
        var site = _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend), admin: true));
        using var client = Client(forwarder, HttpVersion.Version20);
        Assert.Equal("ok", await client.GetStringAsync(new Uri("https://app.test/")));

        using var admin = new HttpClient();
        var text = await admin.GetStringAsync(new Uri(forwarder.AdminAddress, "/metrics"));
        Assert.Contains("forwarder_listener_tls_handshakes_total{listener=\"web\",protocol=\"h2\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_listener_tls_handshake_failures_total{listener=\"web\"} 0", text, StringComparison.Ordinal);
        var expiry = new DateTimeOffset(site.NotAfter.ToUniversalTime()).ToUnixTimeSeconds();
        Assert.Contains($"forwarder_tls_certificate_expiry_timestamp_seconds{{listener=\"web\",certificate=\"{Pem("site")}\"}} {expiry}", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReloadNamingABrokenCertificate_IsRefused_AndTheRunningOneStays()
    {
        var site = _authority.Write(_directory, "site", "app.test");
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(TlsConfig(Tls("site"), Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");

        var missing = Path.Combine(_directory, "missing.pem");
        Assert.False(await forwarder.ReloadAsync(TlsConfig($"tls: {{ certificate: {missing}, key: {Key("site")} }}", Service("app", string.Empty, backend))));
        var error = Assert.Single(forwarder.Runtime.Status.Errors);
        Assert.Contains("listeners[0].tls.certificate", error, StringComparison.Ordinal);
        Assert.Contains(missing, error, StringComparison.Ordinal);
        Assert.Equal(site.Thumbprint, await PresentedThumbprintAsync(web, "app.test"));
    }

    private string Pem(string stem) => Path.Combine(_directory, $"{stem}.pem");

    private string Key(string stem) => Path.Combine(_directory, $"{stem}.key");

    private string Tls(string stem, string extra = "")
        => $"tls:\n  certificate: {Pem(stem)}\n  key: {Key(stem)}" + (extra.Length == 0 ? string.Empty : $"\n  {extra}");

    private static string TlsConfig(string tls, string services, bool admin = false) => $"""
        {(admin ? "admin: { listen: '127.0.0.1:0' }" : string.Empty)}
        listeners:
          - name: web
            listen: '127.0.0.1:0'
            protocol: http
        {Indent(tls, 4)}
            routes:
              - service: app
        services:
        {Indent(services, 2)}
        """;

    /// <summary>A client that trusts only the test authority and reaches every name at the listener.</summary>
    private HttpClient Client(RunningForwarder forwarder, Version version)
    {
        var web = forwarder.EndPoint("web");
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => _authority.Validate(certificate) },
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(web, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        return new HttpClient(handler)
        {
            DefaultRequestVersion = version,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    /// <summary>Handshakes as <paramref name="serverName"/> and returns the thumbprint of the certificate the listener presented.</summary>
    private async Task<string> PresentedThumbprintAsync(IPEndPoint endPoint, string serverName)
    {
        using var socket = await SocketClient.ConnectAsync(endPoint);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
        X509Certificate2? presented = null;
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                presented = certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                return _authority.Validate(certificate);
            },
        }).WaitAsync(TimeSpan.FromSeconds(30));
        return presented?.Thumbprint ?? throw new InvalidOperationException("No certificate was presented.");
    }

    private static async Task<(int Exit, string Output)> RunCurlAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in (string[])["-sS", "--max-time", "30", .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, (await output) + (await error));
    }
}
