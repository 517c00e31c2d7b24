using System.Security.Cryptography;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>Our ngtcp2 client against an independent server: Debian's ngtcp2 example (GnuTLS, nghttp3).</summary>
public sealed class QuicConnectionClientTests : IDisposable
{
    private const string NodeName = "node-a.mesh.test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);
    private readonly string _htdocs = Directory.CreateTempSubdirectory("quic-htdocs-").FullName;

    private QuicClientOptions Options(string? caFile = null, string serverName = NodeName) => new()
    {
        ServerName = serverName,
        CaFile = caFile ?? _pki.CaFile,
        Alpn = "h3",
    };

    [Fact]
    public async Task Connect_ServerCertificateFromMeshCaWithNodeName_CompletesHandshake()
    {
        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs);
        using var cts = new CancellationTokenSource(Deadline);

        await using var connection = await QuicConnection.ConnectAsync(server.EndPoint, Options(), cts.Token);

        Assert.True(connection.IsHandshakeComplete);
    }

    [Fact]
    public async Task Connect_CaThatDidNotSignTheServer_FailsHandshake()
    {
        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs);
        using var otherPki = new QuicTestPki(NodeName);
        using var cts = new CancellationTokenSource(Deadline);

        var error = await Assert.ThrowsAsync<QuicException>(() =>
            QuicConnection.ConnectAsync(server.EndPoint, Options(caFile: otherPki.CaFile), cts.Token));

        Assert.Contains("did not verify", error.Message);
    }

    [Fact]
    public async Task Connect_NameTheCertificateDoesNotCarry_FailsHandshake()
    {
        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs);
        using var cts = new CancellationTokenSource(Deadline);

        var error = await Assert.ThrowsAsync<QuicException>(() =>
            QuicConnection.ConnectAsync(server.EndPoint, Options(serverName: "node-b.mesh.test"), cts.Token));

        Assert.Contains("did not verify", error.Message);
    }

    [Fact]
    public async Task Http3Get_FileLargerThanTheReceiveWindows_ArrivesWhole()
    {
        var content = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);
        await File.WriteAllBytesAsync(Path.Combine(_htdocs, "big.bin"), content);
        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs);
        using var cts = new CancellationTokenSource(Deadline);
        // Windows far below the file size: the transfer only finishes if reads reopen them.
        var options = Options() with { StreamWindow = 64 * 1024, ConnectionWindow = 128 * 1024 };
        await using var connection = await QuicConnection.ConnectAsync(server.EndPoint, options, cts.Token);

        var stream = await connection.OpenStreamAsync(cts.Token);
        await stream.WriteAsync(MinimalHttp3.Headers("GET", NodeName, "/big.bin"), cts.Token);
        stream.CompleteWrites();
        var body = await MinimalHttp3.ReadResponseBodyAsync(stream, cts.Token);

        Assert.Equal(content.Length, body.Length);
        Assert.True(content.AsSpan().SequenceEqual(body), "body differs from the served file");
    }

    [Fact]
    public async Task Http3Post_BodyLargerThanTheServersWindows_IsSentWholeAndAnswered()
    {
        var content = RandomNumberGenerator.GetBytes(1000);
        await File.WriteAllBytesAsync(Path.Combine(_htdocs, "small.bin"), content);
        // The server's stream window stays at 64 KiB (no auto-tuning past it), so a 2 MiB body needs its MAX_STREAM_DATA updates.
        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs,
            "--max-stream-data-bidi-remote=64K", "--max-stream-window=64K", "--max-data=128K", "--max-window=128K");
        using var cts = new CancellationTokenSource(Deadline);
        await using var connection = await QuicConnection.ConnectAsync(server.EndPoint, Options(), cts.Token);

        var stream = await connection.OpenStreamAsync(cts.Token);
        await stream.WriteAsync(MinimalHttp3.Headers("POST", NodeName, "/small.bin"), cts.Token);
        var chunk = RandomNumberGenerator.GetBytes(64 * 1024);
        for (var i = 0; i < 32; i++)
        {
            await stream.WriteAsync(MinimalHttp3.Data(chunk), cts.Token);
        }

        stream.CompleteWrites();
        var body = await MinimalHttp3.ReadResponseBodyAsync(stream, cts.Token);

        Assert.True(content.AsSpan().SequenceEqual(body), "body differs from the served file");
    }

    [Fact]
    public async Task OpenStream_ManyStreamsOnOneConnection_EachGetsItsOwnResponse()
    {
        for (var i = 0; i < 8; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(_htdocs, $"f{i}.txt"), $"file {i} " + new string('x', i * 5000));
        }

        await using var server = await Ngtcp2ExampleServer.StartAsync(_pki, _htdocs);
        using var cts = new CancellationTokenSource(Deadline);
        await using var connection = await QuicConnection.ConnectAsync(server.EndPoint, Options(), cts.Token);

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            var stream = await connection.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(MinimalHttp3.Headers("GET", NodeName, $"/f{i}.txt"), cts.Token);
            stream.CompleteWrites();
            return await MinimalHttp3.ReadResponseBodyAsync(stream, cts.Token);
        }));

        for (var i = 0; i < 8; i++)
        {
            Assert.Equal($"file {i} " + new string('x', i * 5000), System.Text.Encoding.ASCII.GetString(responses[i]));
        }
    }

    public void Dispose()
    {
        _pki.Dispose();
        Directory.Delete(_htdocs, recursive: true);
    }
}
