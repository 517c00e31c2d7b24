using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Threading.Channels;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// Our QUIC against a second, independent implementation: quic-go (Debian's
/// golang-github-lucas-clemente-quic-go-dev), run by <c>quicgo/echo.go</c>, which the test builds at
/// run time. Both ends keep 64 KiB stream and 128 KiB connection windows, so every concurrent stream
/// of 1-4 MiB runs far past them; the handshake checks the test CA and the server name; and each side
/// sees the other's close as a clean application close with code 0.
/// </summary>
public sealed class QuicGoInteropTests : IAsyncLifetime
{
    private const string NodeName = "node-go.mesh.test";
    private const string Alpn = "forwarder-test";
    private const int Streams = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly Lazy<Task<string>> Peer = new(BuildPeerAsync);
    private readonly QuicTestPki _pki = new(NodeName);
    private readonly List<string> _peerOutput = [];
    private Process? _peer;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_peer is not null)
        {
            if (!_peer.HasExited)
            {
                _peer.Kill(entireProcessTree: true);
            }

            await _peer.WaitForExitAsync();
            _peer.Dispose();
        }

        _pki.Dispose();
    }

    [Fact]
    public async Task OurClient_ConcurrentStreamsEchoedByQuicGo_PastTheWindows_ThenClosesCleanly()
    {
        using var cts = new CancellationTokenSource(Deadline);
        var port = await StartServerAsync();

        var client = await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ClientOptions(NodeName), cts.Token);
        await using (client)
        {
            await Task.WhenAll(Enumerable.Range(1, Streams).Select(i => EchoThroughAsync(client, i * 1024 * 1024 + i, cts.Token)));
        }

        await WaitForOutputAsync(lines => lines.Contains("closed 0"), "quic-go saw our application close with code 0");
        Assert.DoesNotContain(Lines(), line => line.StartsWith("error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task OurClient_NameNotInQuicGosCertificate_FailsTheHandshake()
    {
        using var cts = new CancellationTokenSource(Deadline);
        var port = await StartServerAsync();

        await Assert.ThrowsAsync<QuicException>(async () => await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port),
            ClientOptions("someone-else.mesh.test"), cts.Token));
    }

    [Fact]
    public async Task QuicGoClient_ConcurrentStreamsEchoedByOurListener_PastTheWindows_ThenClosesCleanly()
    {
        using var cts = new CancellationTokenSource(Deadline);
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new QuicServerOptions
        {
            Alpn = Alpn,
            CertificateFile = _pki.ServerCertificateFile,
            KeyFile = _pki.ServerKeyFile,
            StreamWindow = 64 * 1024,
            ConnectionWindow = 128 * 1024,
        });
        const int size = 1024 * 1024;
        await StartPeerAsync("client", $"127.0.0.1:{listener.LocalEndPoint.Port}", _pki.CaFile, NodeName,
            Streams.ToString(CultureInfo.InvariantCulture), size.ToString(CultureInfo.InvariantCulture));

        await using var server = await listener.AcceptAsync(cts.Token);
        var echoes = new List<Task>();
        for (var i = 0; i < Streams; i++)
        {
            echoes.Add(EchoAsync(await server.AcceptStreamAsync(cts.Token), cts.Token));
        }

        await Task.WhenAll(echoes);
        await WaitForOutputAsync(lines => lines.Contains("done") || lines.Any(line => line.StartsWith("error", StringComparison.Ordinal)), "the quic-go client finished");
        Assert.Equal(Streams, Lines().Count(line => line.StartsWith("stream-ok ", StringComparison.Ordinal)));
        Assert.DoesNotContain(Lines(), line => line.StartsWith("error", StringComparison.Ordinal));
        // quic-go closed with application code 0: our connection reports exactly that to a waiting accept.
        var closed = await Assert.ThrowsAsync<ChannelClosedException>(async () => await server.AcceptStreamAsync(cts.Token));
        Assert.Contains("closed by the peer (error 0x0)", closed.InnerException?.Message, StringComparison.Ordinal);
    }

    private QuicClientOptions ClientOptions(string serverName) => new()
    {
        Alpn = Alpn,
        ServerName = serverName,
        CaFile = _pki.CaFile,
        StreamWindow = 64 * 1024,
        ConnectionWindow = 128 * 1024,
    };

    /// <summary>Starts the quic-go echo server; returns its UDP port.</summary>
    private async Task<int> StartServerAsync()
    {
        await StartPeerAsync("server", _pki.CaFile, _pki.ServerCertificateFile, _pki.ServerKeyFile);
        await WaitForOutputAsync(lines => lines.Any(line => line.StartsWith("listening ", StringComparison.Ordinal)), "quic-go listens");
        return int.Parse(Lines().First(line => line.StartsWith("listening ", StringComparison.Ordinal))["listening ".Length..], CultureInfo.InvariantCulture);
    }

    private static async Task EchoThroughAsync(QuicConnection connection, int size, CancellationToken cancellationToken)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        var stream = await connection.OpenStreamAsync(cancellationToken);
        var send = Task.Run(async () =>
        {
            for (var offset = 0; offset < payload.Length; offset += 100_000)
            {
                await stream.WriteAsync(payload.AsMemory(offset, Math.Min(100_000, payload.Length - offset)), cancellationToken);
            }

            stream.CompleteWrites();
        }, cancellationToken);
        var echoed = await ReadToEndAsync(stream, cancellationToken);
        await send;
        Assert.True(payload.AsSpan().SequenceEqual(echoed), $"stream {stream.Id}: {payload.Length} bytes sent, {echoed.Length} different ones echoed");
    }

    internal static async Task EchoAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
        }

        stream.CompleteWrites();
    }

    internal static async Task<byte[]> ReadToEndAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var all = new MemoryStream();
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            all.Write(buffer, 0, n);
        }

        return all.ToArray();
    }

    private async Task StartPeerAsync(params string[] arguments)
    {
        _peer = new Process
        {
            StartInfo = new ProcessStartInfo(await Peer.Value, arguments)
            {
                RedirectStandardOutput = true,
                // quic-go logs only warnings there (such as a UDP buffer it could not enlarge).
                RedirectStandardError = true,
            },
        };
        _peer.OutputDataReceived += (_, line) => Collect(line.Data);
        _peer.ErrorDataReceived += (_, line) => Collect(line.Data is null ? null : "stderr: " + line.Data);
        _peer.Start();
        _peer.BeginOutputReadLine();
        _peer.BeginErrorReadLine();
    }

    private async Task WaitForOutputAsync(Func<List<string>, bool> condition, string because)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition(Lines()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {because}; quic-go said: {string.Join('\n', Lines())}");
            Assert.False(_peer!.HasExited && !condition(Lines()), $"quic-go exited before {because}; it said: {string.Join('\n', Lines())}");
            await Task.Delay(20);
        }
    }

    private void Collect(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_peerOutput)
        {
            _peerOutput.Add(line);
        }
    }

    private List<string> Lines()
    {
        lock (_peerOutput)
        {
            return [.. _peerOutput];
        }
    }

    /// <summary>Builds the quic-go peer once per test run; returns the binary's path.</summary>
    private static async Task<string> BuildPeerAsync()
    {
        var source = Path.Combine(RepositoryRoot(), "tests", "Forwarder.Transports.Tests", "Quic", "quicgo");
        var output = Path.Combine(Path.GetTempPath(), $"forwarder-quic-go-peer-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        var binary = Path.Combine(output, "quic-go-echo");
        var build = new ProcessStartInfo("go", ["build", "-o", binary, "echo.go"])
        {
            WorkingDirectory = source,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        build.Environment["GO111MODULE"] = "off";
        build.Environment["GOPATH"] = "/usr/share/gocode";
        build.Environment["GOCACHE"] = Path.Combine(output, "cache");
        build.Environment["GOFLAGS"] = string.Empty;
        using var go = Process.Start(build)!;
        var stdout = go.StandardOutput.ReadToEndAsync();
        var stderr = go.StandardError.ReadToEndAsync();
        await go.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(go.ExitCode == 0, $"go build failed in {source} (needs golang-go and golang-github-lucas-clemente-quic-go-dev): {await stdout}{await stderr}");
        return binary;
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Forwarder.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (Forwarder.sln) was not found above the test binaries.");
    }
}
