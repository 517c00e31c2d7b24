using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>
/// Our yamux against the reference one, HashiCorp's (Debian's golang-github-hashicorp-yamux-dev),
/// run by <c>gointerop/main.go</c>, which the test builds at run time. A Go peer opening streams
/// from many goroutines sends their SYNs out of id order; streams both ways carry a few hundred KB
/// each, past the window; and a stream we dispose right after writing still lets the Go side
/// read everything before our FIN.
/// </summary>
public sealed class YamuxGoInteropTests : IAsyncLifetime
{
    private const int Streams = 50;
    private const int PayloadSize = 300_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly Lazy<Task<string>> Peer = new(() => GoPeerBuild.BuildAsync(["Mux", "gointerop"], "main.go", "yamux-go-peer", "golang-go and golang-github-hashicorp-yamux-dev"));
    private readonly PinnedBlockMemoryPool _pool = new(4096);
    private readonly List<string> _peerOutput = [];
    private readonly List<string> _peerErrors = [];
    private IConnectionListener _listener = null!;
    private ConnectionContext? _connection;
    private YamuxSession? _session;
    private Process? _peer;

    public async Task InitializeAsync()
        => _listener = await new TcpListenerFactory(new TcpTransportOptions(), _pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        if (_peer is not null)
        {
            _peer.Kill(entireProcessTree: true);
            await _peer.WaitForExitAsync();
            _peer.Dispose();
        }

        if (_session is not null)
        {
            await _session.DisposeAsync();
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        await _listener.DisposeAsync();
        _pool.Dispose();
    }

    [Fact]
    public async Task StreamsTheGoPeerOpensAllAtOnce_AreAcceptedAndEchoed_WithoutASessionError()
    {
        var session = await StartAsync(goOpens: Streams);
        var echoes = Task.Run(async () =>
        {
            var served = new List<Task>();
            for (var i = 0; i < Streams; i++)
            {
                var stream = await session.AcceptStreamAsync().AsTask().WaitAsync(Timeout);
                Assert.True(stream is not null, $"the session ended after {i} streams: {session.Failure}; the Go peer said: {Output()}");
                served.Add(YamuxSessionTests.EchoAsync(stream));
            }

            await Task.WhenAll(served);
        });

        await WaitForOutputAsync(lines => lines.Any(line => line.StartsWith("open-done ", StringComparison.Ordinal)), "the Go peer finished its streams");
        Assert.True(Lines().Contains("open-done 0"), $"the Go peer failed to open or echo some streams: {Output()}");
        await echoes.WaitAsync(Timeout);
        Assert.Equal(Streams, Lines().Count(line => line.StartsWith("open-ok ", StringComparison.Ordinal)));
        AssertNoSessionError(session);
    }

    [Fact]
    public async Task StreamsWeOpenAllAtOnce_AreEchoedByTheGoPeer_PastTheWindow()
    {
        var session = await StartAsync(goOpens: 0);
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(i => Task.Run(async () =>
        {
            await using var stream = session.OpenStream();
            var data = RandomNumberGenerator.GetBytes(PayloadSize + i);
            var sending = Task.Run(async () =>
            {
                await stream.Transport.Output.WriteAsync("E"u8.ToArray());
                for (var offset = 0; offset < data.Length; offset += 64 * 1024)
                {
                    await stream.Transport.Output.WriteAsync(data.AsMemory(offset, Math.Min(64 * 1024, data.Length - offset)));
                }

                await stream.Transport.Output.CompleteAsync();
            });
            var echoed = await YamuxSessionTests.ReadToEndAsync(stream);
            await sending;
            Assert.True(data.AsSpan().SequenceEqual(echoed), $"stream {stream.Id}: the echo of {data.Length} bytes came back as {echoed.Length} different ones; the Go peer said: {Output()}");
        }))).WaitAsync(Timeout);

        AssertNoSessionError(session);
    }

    [Fact]
    public async Task AStreamDisposedRightAfterItsData_IsReadToTheEndByTheGoPeer()
    {
        var session = await StartAsync(goOpens: 0);
        var expected = new List<string>();
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(i =>
        {
            var data = RandomNumberGenerator.GetBytes(PayloadSize + i);
            lock (expected)
            {
                expected.Add($"sink {Convert.ToHexStringLower(SHA256.HashData(data))} {data.Length}");
            }

            return Task.Run(async () =>
            {
                // Written and disposed without waiting for the peer: what was written must still all arrive.
                await using var stream = session.OpenStream();
                await stream.Transport.Output.WriteAsync("S"u8.ToArray());
                await stream.Transport.Output.WriteAsync(data);
            });
        })).WaitAsync(Timeout);

        await WaitForOutputAsync(lines => lines.Count(line => line.StartsWith("sink", StringComparison.Ordinal)) >= Streams, "the Go peer read every stream to its end");
        Assert.Equal(expected.Order(StringComparer.Ordinal), Lines().Where(line => line.StartsWith("sink", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        AssertNoSessionError(session);
    }

    /// <summary>Starts the Go peer, which dials us and runs the client side; returns our (server) session.</summary>
    private async Task<YamuxSession> StartAsync(int goOpens)
    {
        var peer = await Peer.Value;
        _peer = new Process
        {
            StartInfo = new ProcessStartInfo(peer, [((IPEndPoint)_listener.EndPoint).Port.ToString(CultureInfo.InvariantCulture), goOpens.ToString(CultureInfo.InvariantCulture), PayloadSize.ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            },
        };
        _peer.OutputDataReceived += (_, line) => Collect(_peerOutput, line.Data);
        _peer.ErrorDataReceived += (_, line) => Collect(_peerErrors, line.Data);
        _peer.Start();
        _peer.BeginOutputReadLine();
        _peer.BeginErrorReadLine();

        _connection = await _listener.AcceptAsync().AsTask().WaitAsync(Timeout);
        Assert.NotNull(_connection);
        _session = new YamuxSession(_connection, isClient: false);
        _session.Start();
        return _session;
    }

    private void AssertNoSessionError(YamuxSession session)
    {
        Assert.False(session.Completion.IsCompleted, $"our session ended: {session.Failure}; the Go peer said: {Output()}");
        Assert.DoesNotContain(Lines(), line => line.Contains("error", StringComparison.Ordinal) || line == "session-closed");
        lock (_peerErrors)
        {
            // HashiCorp's yamux logs every protocol complaint ("[ERR] yamux: ...", "[WARN] yamux: ...") there.
            Assert.True(_peerErrors.Count == 0, $"the Go peer logged: {string.Join('\n', _peerErrors)}");
        }
    }

    private async Task WaitForOutputAsync(Func<List<string>, bool> condition, string because)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition(Lines()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {because}; the Go peer said: {Output()}");
            Assert.False(_peer!.HasExited, $"the Go peer exited; it said: {Output()}");
            await Task.Delay(20);
        }
    }

    private static void Collect(List<string> lines, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (lines)
        {
            lines.Add(line);
        }
    }

    private List<string> Lines()
    {
        lock (_peerOutput)
        {
            return [.. _peerOutput];
        }
    }

    private string Output()
    {
        lock (_peerErrors)
        {
            return string.Join('\n', Lines().Concat(_peerErrors.Select(line => "stderr: " + line)));
        }
    }
}
