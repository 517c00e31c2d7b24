using System.Buffers.Binary;
using System.Net;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http2.Client.Http2ClientKit;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>
/// <see cref="Http2ClientPool"/> against python3-h2, nghttpd and grpcio servers: GOAWAY
/// mid-flight and the retry of what the server did not take, connections added when all are
/// full, dead and idle ones replaced, and a gRPC unary call with its trailers.
/// </summary>
public sealed class Http2ClientPoolTests : IDisposable
{
    private string? _htdocs;

    public void Dispose()
    {
        if (_htdocs is not null)
        {
            Directory.Delete(_htdocs, recursive: true);
        }
    }

    [Fact]
    public async Task OpenStream_GoAwayMidFlight_KeptStreamFinishesAndRefusedOneRetriesOnFreshConnection()
    {
        await using var server = await Http2PeerServer.StartH2Async("goaway");
        await using var pool = Pool(server.EndPoint, new Http2ClientOptions { MaxConnections = 1 });
        await using var first = await pool.OpenStreamAsync(Head("GET", "/goaway", server.EndPoint), endStream: true);
        await using var second = await pool.OpenStreamAsync(Head("GET", "/goaway", server.EndPoint), endStream: true);

        var kept = await ReadResponseAsync(first);
        var refused = await Assert.ThrowsAsync<Http2ClientException>(() => ReadResponseAsync(second));
        var retried = await GetAsync(pool, server.EndPoint, "/goaway");

        Assert.Equal("first", kept.Text);
        Assert.True(refused.CanRetry);
        Assert.Equal("fresh", retried.Text);
        Assert.Equal(1, pool.ConnectionCount);
    }

    [Fact]
    public async Task OpenStream_EveryConnectionAtItsLimit_DialsAnotherUpToTheMaximum()
    {
        var htdocs = Directory.CreateTempSubdirectory("h2c-pool").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(htdocs, "a.txt"), "a");
            await using var server = await Http2PeerServer.StartNghttpdAsync(htdocs, "--echo-upload -m 1");
            await using var pool = Pool(server.EndPoint, new Http2ClientOptions { MaxConnections = 2 });

            await using var first = await pool.OpenStreamAsync(Head("POST", "/a.txt", server.EndPoint), endStream: false);
            await using var second = await pool.OpenStreamAsync(Head("POST", "/a.txt", server.EndPoint), endStream: false);
            Assert.Equal(2, pool.ConnectionCount);
            var third = pool.OpenStreamAsync(Head("GET", "/a.txt", server.EndPoint), endStream: true).AsTask();

            await second.WriteBodyAsync("2"u8.ToArray(), endStream: true);
            Assert.Equal("2", (await ReadResponseAsync(second)).Text);
            await using var opened = await third.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("a", (await ReadResponseAsync(opened)).Text);
            await first.WriteBodyAsync("1"u8.ToArray(), endStream: true);
            Assert.Equal("1", (await ReadResponseAsync(first)).Text);
            Assert.Equal(2, pool.ConnectionCount);
        }
        finally
        {
            Directory.Delete(htdocs, recursive: true);
        }
    }

    [Fact]
    public async Task OpenStream_ConnectionDroppedByPeer_NextRequestDialsAFreshOne()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var pool = Pool(server.EndPoint);

        await Assert.ThrowsAsync<Http2ClientException>(() => GetAsync(pool, server.EndPoint, "/close"));
        await Eventually.TrueAsync(() => pool.ConnectionCount == 0, "the pool drops the dead connection");

        Assert.Equal("ok", (await GetAsync(pool, server.EndPoint, "/ok")).Text);
        Assert.Equal(1, pool.ConnectionCount);
    }

    [Fact]
    public async Task IdleTimeout_NoStreams_ConnectionClosedAndReplacedOnDemand()
    {
        await using var server = await Http2PeerServer.StartH2Async("plain");
        await using var pool = Pool(server.EndPoint, new Http2ClientOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });

        Assert.Equal("ok", (await GetAsync(pool, server.EndPoint, "/ok")).Text);
        await Eventually.TrueAsync(() => pool.ConnectionCount == 0, "the idle connection closes");

        Assert.Equal("ok", (await GetAsync(pool, server.EndPoint, "/ok")).Text);
    }

    [Fact]
    public async Task RetireAsync_StreamInFlight_FinishesThenTheRetireCompletes_LongBeforeTheGrace()
    {
        await using var server = await EchoServerAsync();
        await using var pool = Pool(server.EndPoint);
        await using var stream = await pool.OpenStreamAsync(Head("POST", "/a.txt", server.EndPoint), endStream: false);

        var retired = pool.RetireAsync(TimeSpan.FromMinutes(10), CancellationToken.None);
        Assert.False(retired.IsCompleted);
        await stream.WriteBodyAsync("1"u8.ToArray(), endStream: true);

        Assert.Equal("1", (await ReadResponseAsync(stream).WaitAsync(TimeSpan.FromSeconds(30))).Text);
        await retired.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task RetireAsync_Aborted_TheStreamInFlightFailsAndTheRetireCompletes()
    {
        await using var server = await EchoServerAsync();
        await using var pool = Pool(server.EndPoint);
        await using var stream = await pool.OpenStreamAsync(Head("POST", "/a.txt", server.EndPoint), endStream: false);
        using var abort = new CancellationTokenSource();

        var retired = pool.RetireAsync(TimeSpan.FromMinutes(10), abort.Token);
        await abort.CancelAsync();

        await retired.WaitAsync(TimeSpan.FromSeconds(30));
        var error = await Record.ExceptionAsync(() => ReadResponseAsync(stream).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.NotNull(error);
        Assert.IsNotType<TimeoutException>(error);
    }

    /// <summary>nghttpd answering each upload with its body (once the body has ended).</summary>
    private async Task<Http2PeerServer> EchoServerAsync()
    {
        _htdocs = Directory.CreateTempSubdirectory("h2c-pool").FullName;
        await File.WriteAllTextAsync(Path.Combine(_htdocs, "a.txt"), "a");
        return await Http2PeerServer.StartNghttpdAsync(_htdocs, "--echo-upload");
    }

    [Fact]
    public async Task GrpcUnary_OkAndError_StatusAndMessageInTrailers()
    {
        await using var server = await Http2PeerServer.StartGrpcAsync();
        await using var pool = Pool(server.EndPoint);

        var ok = await UnaryAsync(pool, server.EndPoint, "widget");
        var failed = await UnaryAsync(pool, server.EndPoint, "fail");

        Assert.Equal(200, ok.Status);
        Assert.Equal("echo:widget", Encoding.ASCII.GetString(ok.Body.AsSpan(5)));
        Assert.Equal(ok.Body.Length - 5, BinaryPrimitives.ReadInt32BigEndian(ok.Body.AsSpan(1)));
        Assert.Equal("0", ok.Trailers["grpc-status"]);
        Assert.Equal("t1", ok.Trailers["x-trailer"]);

        // A call that fails before any message is Trailers-Only: grpc-status comes in the one head.
        var status = failed.Trailers.GetValueOrDefault("grpc-status") ?? failed.Headers["grpc-status"];
        var message = failed.Trailers.GetValueOrDefault("grpc-message") ?? failed.Headers["grpc-message"];
        Assert.Equal("5", status);
        Assert.Equal("no such widget", Uri.UnescapeDataString(message));
    }

    private static async Task<Http2TestResponse> UnaryAsync(Http2ClientPool pool, IPEndPoint endPoint, string message)
    {
        var payload = Encoding.ASCII.GetBytes(message);
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), payload.Length);
        payload.CopyTo(frame, 5);
        await using var stream = await pool.OpenStreamAsync(
            Head("POST", "/test.Echo/Unary", endPoint, ("content-type", "application/grpc"), ("te", "trailers")),
            endStream: false);
        await stream.WriteBodyAsync(frame, endStream: true);
        return await ReadResponseAsync(stream);
    }
}
