using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Codec;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http2.Client.Http2ClientKit;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>
/// <see cref="Http2ClientConnection"/> against independent servers: nghttpd (nghttp2's server:
/// files, echoed uploads, tiny windows, one stream at a time, trailers, TLS with ALPN) and
/// Kestrel (request trailers both ways).
/// </summary>
public sealed class Http2ClientConnectionTests : IDisposable
{
    private readonly string _htdocs = Directory.CreateTempSubdirectory("h2c-htdocs").FullName;
    private readonly byte[] _large = RandomNumberGenerator.GetBytes(1536 * 1024);

    public Http2ClientConnectionTests()
    {
        File.WriteAllBytes(Path.Combine(_htdocs, "large.bin"), _large);
        File.WriteAllText(Path.Combine(_htdocs, "small.txt"), "hello h2");
    }

    public void Dispose() => Directory.Delete(_htdocs, recursive: true);

    [Fact]
    public async Task OpenStream_ManyConcurrentLargeResponses_AllArriveWhole()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty);
        await using var connection = await ConnectAsync(server.EndPoint);

        // 1.5 MiB each, past the 256 KiB stream window: only credit returned as read lets them finish.
        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => GetAsync(connection, server.EndPoint, "/large.bin")));

        Assert.All(responses, response =>
        {
            Assert.Equal(200, response.Status);
            Assert.True(response.Body.AsSpan().SequenceEqual(_large));
        });
        Assert.Equal("hello h2", (await GetAsync(connection, server.EndPoint, "/small.txt")).Text);
        Assert.Equal(0, connection.ActiveStreams);
    }

    [Fact]
    public async Task WriteBody_PeerWindowsTiny_UploadEchoedWhole()
    {
        // Stream window 1023 bytes, connection window 4095: a sender that overran either would be reset.
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, "--echo-upload -w 10 -W 12");
        await using var connection = await ConnectAsync(server.EndPoint);
        var upload = RandomNumberGenerator.GetBytes(300 * 1024);

        await using var stream = await connection.OpenStreamAsync(Head("POST", "/small.txt", server.EndPoint), endStream: false);
        var sending = Task.Run(async () =>
        {
            await stream.WriteBodyAsync(upload.AsMemory(0, 100_000));
            await stream.WriteBodyAsync(upload.AsMemory(100_000), endStream: true);
        });
        var response = await ReadResponseAsync(stream);
        await sending;

        Assert.Equal(200, response.Status);
        Assert.True(response.Body.AsSpan().SequenceEqual(upload));
    }

    [Fact]
    public async Task OpenStream_PeerAllowsOneStream_SecondWaitsForTheFirstToEnd()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, "--echo-upload -m 1");
        await using var connection = await ConnectAsync(server.EndPoint);
        Assert.Equal(1, connection.MaxConcurrentStreams);

        await using var first = await connection.OpenStreamAsync(Head("POST", "/small.txt", server.EndPoint), endStream: false);
        var second = connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true).AsTask();
        await connection.PingAsync();
        Assert.False(second.IsCompleted, "a second stream opened past the server's limit of one");

        await first.WriteBodyAsync("one"u8.ToArray(), endStream: true);
        Assert.Equal("one", (await ReadResponseAsync(first)).Text);
        await using var opened = await second.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("hello h2", (await ReadResponseAsync(opened)).Text);
    }

    [Fact]
    public async Task OpenStream_WaiterGaveUp_NextWaiterGetsTheFreedSlot()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, "--echo-upload -m 1");
        await using var connection = await ConnectAsync(server.EndPoint);

        await using var first = await connection.OpenStreamAsync(Head("POST", "/small.txt", server.EndPoint), endStream: false);
        using var giveUp = new CancellationTokenSource();
        var quitter = connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true, giveUp.Token).AsTask();
        var patient = connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true).AsTask();
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => quitter);

        await first.WriteBodyAsync("one"u8.ToArray(), endStream: true);
        Assert.Equal("one", (await ReadResponseAsync(first)).Text);
        await using var opened = await patient.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("hello h2", (await ReadResponseAsync(opened)).Text);
    }

    [Fact]
    public async Task ReadBody_PeerSendsTrailers_TrailersAfterBody()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, "--trailer \"x-checksum: abc\"");
        await using var connection = await ConnectAsync(server.EndPoint);

        var response = await GetAsync(connection, server.EndPoint, "/small.txt");

        Assert.Equal("hello h2", response.Text);
        Assert.Equal("abc", response.Trailers["x-checksum"]);
    }

    [Fact]
    public async Task Ping_AnsweredByPeer_MeasuresRoundTrip()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty);
        await using var connection = await ConnectAsync(server.EndPoint);

        var rtt = await connection.PingAsync();

        Assert.True(rtt > TimeSpan.Zero && rtt < TimeSpan.FromSeconds(30));
        Assert.Equal(rtt, connection.RoundTripTime);
    }

    [Fact]
    public async Task Tls_PeerNegotiatesH2_ServesOverTls()
    {
        using var certificates = new TestCertificates();
        certificates.Write(_htdocs, "server", "localhost");
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty, Path.Combine(_htdocs, "server.key"), Path.Combine(_htdocs, "server.pem"));
        var tls = new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
        };
        await using var pool = new Http2ClientPool(Http2ClientDialer.Tls(Tcp, server.EndPoint, tls), new Http2ClientOptions());

        var response = await GetAsync(pool, server.EndPoint, "/small.txt");

        Assert.Equal(200, response.Status);
        Assert.Equal("hello h2", response.Text);
    }

    [Fact]
    public async Task Tls_UpstreamStallsHandshake_DialFailsWithinDeadlineAndLaterDialWorks()
    {
        using var certificates = new TestCertificates();
        certificates.Write(_htdocs, "server", "localhost");
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty, Path.Combine(_htdocs, "server.key"), Path.Combine(_htdocs, "server.pem"));
        using var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var silentEndPoint = (IPEndPoint)silent.LocalEndpoint;
        var tls = new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
        };
        var stalled = Http2ClientDialer.Tls(Tcp, silentEndPoint, tls);
        var good = Http2ClientDialer.Tls(Tcp, server.EndPoint, tls);
        var useGood = false;
        await using var pool = new Http2ClientPool(token => (Volatile.Read(ref useGood) ? good : stalled)(token), new Http2ClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1) });

        var failure = await Assert.ThrowsAsync<Http2ClientException>(() => GetAsync(pool, server.EndPoint, "/small.txt").WaitAsync(TimeSpan.FromSeconds(30)));
        Volatile.Write(ref useGood, true);
        var response = await GetAsync(pool, server.EndPoint, "/small.txt").WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Http2ErrorCode.ConnectError, failure.Code);
        Assert.Equal("hello h2", response.Text);
        Assert.Null(tls.ApplicationProtocols);
    }

    [Fact]
    public async Task OpenStream_StreamIdsRunOut_LastStreamsFinishAndConnectionTakesNoMore()
    {
        await using var server = await Http2PeerServer.StartNghttpdAsync(_htdocs, string.Empty);
        await using var connection = await ConnectAsync(server.EndPoint);
        connection.SkipStreamIdsTo(int.MaxValue - 2);

        await using var last = await connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true);
        await using var beforeLast = await connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true);
        Assert.False(connection.IsUsable);
        var refused = await Assert.ThrowsAsync<Http2ClientException>(() => connection.OpenStreamAsync(Head("GET", "/small.txt", server.EndPoint), endStream: true).AsTask());

        Assert.Equal("hello h2", (await ReadResponseAsync(last)).Text);
        Assert.Equal("hello h2", (await ReadResponseAsync(beforeLast)).Text);
        Assert.True(refused.CanRetry);
    }

    [Fact]
    public async Task Ping_PeerFloodsAndNeverReads_ConnectionEndsWithEnhanceYourCalm()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepting = listener.AcceptTcpClientAsync();
        await using var connection = new Http2ClientConnection(await Tcp.ConnectAsync(listener.LocalEndpoint), new Http2ClientOptions());
        using var peer = await accepting.WaitAsync(TimeSpan.FromSeconds(30));
        var socket = peer.GetStream();
        // SETTINGS (empty), SETTINGS ACK; then PINGs, and nothing the client sends is ever read.
        await socket.WriteAsync(Convert.FromHexString("000000040000000000" + "000000040100000000"));
        await connection.StartAsync(CancellationToken.None);
        var pings = Convert.FromHexString(string.Concat(Enumerable.Repeat("000008060000000000" + "0102030405060708", 1000)));

        var sent = 0L;
        while (!connection.Completion.IsCompleted && sent < 256L * 1024 * 1024)
        {
            try
            {
                await socket.WriteAsync(pings).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (IOException)
            {
                break;
            }

            sent += pings.Length;
        }

        await connection.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        var failure = Assert.IsType<Http2ClientException>(connection.Failure);
        Assert.Equal(Http2ErrorCode.EnhanceYourCalm, failure.Code);
    }

    [Fact]
    public async Task EndRequest_WithTrailers_KestrelSeesThemAndAnswersWithItsOwn()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            var body = await new StreamReader(context.Request.Body).ReadToEndAsync();
            context.Response.DeclareTrailer("x-length");
            await context.Response.WriteAsync($"{body}|{context.Request.GetTrailer("x-request-trailer")}");
            context.Response.AppendTrailer("x-length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        });
        var endPoint = new IPEndPoint(IPAddress.Loopback, backend.Port);
        await using var connection = await ConnectAsync(endPoint);

        await using var stream = await connection.OpenStreamAsync(Head("POST", "/", endPoint, ("te", "trailers")), endStream: false);
        await stream.WriteBodyAsync(Encoding.ASCII.GetBytes("payload"));
        await stream.EndRequestAsync(Fields(("x-request-trailer", "sent-last")));
        var response = await ReadResponseAsync(stream);

        Assert.Equal(200, response.Status);
        Assert.Equal("payload|sent-last", response.Text);
        Assert.Equal("7", response.Trailers["x-length"]);
    }

    [Fact]
    public async Task DisposeAsync_OpenConnection_SendsGoAwayAndFailsStreams()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        var connection = await ConnectAsync(server.EndPoint);
        await using var hanging = await connection.OpenStreamAsync(Head("GET", "/hang", server.EndPoint), endStream: true);

        await connection.DisposeAsync();

        var error = await Assert.ThrowsAsync<Http2ClientException>(async () => await hanging.ReadResponseHeadAsync());
        Assert.False(error.CanRetry);
        Assert.False(connection.IsUsable);
        Assert.True(connection.Completion.IsCompleted);
    }

    [Fact]
    public async Task RstStream_FromPeer_FailsOnlyThatStream()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var connection = await ConnectAsync(server.EndPoint);

        var refused = await Assert.ThrowsAsync<Http2ClientException>(() => GetAsync(connection, server.EndPoint, "/rst/7"));
        var failed = await Assert.ThrowsAsync<Http2ClientException>(() => GetAsync(connection, server.EndPoint, "/rst/2"));

        Assert.Equal(Http2ErrorCode.RefusedStream, refused.Code);
        Assert.True(refused.CanRetry);
        Assert.Equal(Http2ErrorCode.InternalError, failed.Code);
        Assert.False(failed.CanRetry);
        Assert.Equal("ok", (await GetAsync(connection, server.EndPoint, "/ok")).Text);
    }

    [Fact]
    public async Task Cancel_StreamInFlight_PeerReceivesRstStreamCancel()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var connection = await ConnectAsync(server.EndPoint);
        using var cancellation = new CancellationTokenSource();
        await using var hanging = await connection.OpenStreamAsync(Head("GET", "/hang", server.EndPoint), endStream: true, cancellation.Token);
        var head = hanging.ReadResponseHeadAsync().AsTask();

        cancellation.Cancel();

        await Assert.ThrowsAsync<Http2ClientException>(() => head);
        Assert.Equal(0, connection.ActiveStreams);
        Assert.Equal(((int)Http2ErrorCode.Cancel).ToString(System.Globalization.CultureInfo.InvariantCulture), (await GetAsync(connection, server.EndPoint, "/resets")).Text);
    }

    [Fact]
    public async Task DisposeAsync_StaleHandleAfterStreamReused_LeavesNewOwnerAlone()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var connection = await ConnectAsync(server.EndPoint);
        var stale = await connection.OpenStreamAsync(Head("GET", "/ok", server.EndPoint), endStream: true);
        Assert.Equal("ok", (await ReadResponseAsync(stale)).Text);
        await stale.DisposeAsync();

        // A round trip later the reader has let go of the stale stream too, so it is back in the
        // pool; three new streams take every pooled one, it among them.
        Assert.Equal("ok", (await GetAsync(connection, server.EndPoint, "/ok")).Text);
        await using var first = await connection.OpenStreamAsync(Head("GET", "/hang", server.EndPoint), endStream: true);
        await using var second = await connection.OpenStreamAsync(Head("GET", "/hang", server.EndPoint), endStream: true);
        await using var third = await connection.OpenStreamAsync(Head("GET", "/hang", server.EndPoint), endStream: true);
        Assert.Contains(stale.Exchange, new[] { first.Exchange, second.Exchange, third.Exchange });
        await stale.DisposeAsync();

        Assert.Equal(string.Empty, (await GetAsync(connection, server.EndPoint, "/resets")).Text);
        Assert.Equal(3, connection.ActiveStreams);
        Assert.Throws<ObjectDisposedException>(stale.Cancel);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stale.ReadResponseHeadAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stale.ReadBodyAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stale.WriteBodyAsync(new byte[1]));
        Assert.Equal(string.Empty, (await GetAsync(connection, server.EndPoint, "/resets")).Text);
        Assert.Equal(3, connection.ActiveStreams);
    }

    [Fact]
    public async Task OpenStream_TokenAlreadyCancelled_SendsNothingAndConnectionStaysWhole()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var connection = await ConnectAsync(server.EndPoint);
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await connection.OpenStreamAsync(Head("GET", "/ok", server.EndPoint), endStream: true, cancellation.Token));

        Assert.Equal(0, connection.ActiveStreams);
        Assert.Equal(string.Empty, (await GetAsync(connection, server.EndPoint, "/resets")).Text);
        Assert.Equal("ok", (await GetAsync(connection, server.EndPoint, "/ok")).Text);
    }

    [Fact]
    public async Task PeerClosesAbruptly_StreamFailsAndConnectionEnds()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var connection = await ConnectAsync(server.EndPoint);

        var error = await Assert.ThrowsAsync<Http2ClientException>(() => GetAsync(connection, server.EndPoint, "/close"));

        Assert.False(error.CanRetry);
        await connection.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(connection.IsUsable);
        Assert.NotNull(connection.Failure);
    }

    [Fact]
    public async Task Settings_PeerNeverAcknowledges_ConnectionFailsWithSettingsTimeout()
    {
        await using var server = await Http2PeerServer.StartH2Async("no-settings-ack");
        await using var connection = await ConnectAsync(server.EndPoint, new Http2ClientOptions { SettingsTimeout = TimeSpan.FromMilliseconds(500) });

        // On a loaded machine the deadline may pass before the open: then the open is refused; else the open stream is lost with the connection.
        await Assert.ThrowsAsync<Http2ClientException>(async () =>
        {
            await using var stream = await connection.OpenStreamAsync(Head("GET", "/ok", server.EndPoint), endStream: true);
            await stream.ReadResponseHeadAsync();
        });

        await connection.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Http2ErrorCode.SettingsTimeout, (connection.Failure as Http2ClientException)?.Code);
    }
}
