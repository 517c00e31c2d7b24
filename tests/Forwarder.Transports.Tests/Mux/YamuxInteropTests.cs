using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>
/// Our yamux against an independent one: @chainsafe/libp2p-yamux (the yamux of js-libp2p),
/// run under Node.js by <c>interop/yamux-peer.mjs</c>. Streams both ways, data well past the
/// window, half-close, and pings, as seen by both implementations.
/// </summary>
public sealed class YamuxInteropTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static readonly SemaphoreSlim InstallLock = new(1, 1);
    private readonly PinnedBlockMemoryPool _pool = new(4096);
    private readonly List<string> _peerOutput = [];
    private Process _peer = null!;
    private ConnectionContext _connection = null!;
    private YamuxSession _session = null!;

    public async Task InitializeAsync()
    {
        var folder = await InstallPeerAsync();
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _peer = new Process
        {
            StartInfo = new ProcessStartInfo("node", ["yamux-peer.mjs"]) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true },
        };
        _peer.OutputDataReceived += (_, line) =>
        {
            if (line.Data is not { } text)
            {
                return;
            }

            lock (_peerOutput)
            {
                _peerOutput.Add(text);
            }

            if (text.StartsWith("listening ", StringComparison.Ordinal))
            {
                listening.TrySetResult(int.Parse(text["listening ".Length..], System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        _peer.ErrorDataReceived += (_, line) =>
        {
            lock (_peerOutput)
            {
                _peerOutput.Add("stderr: " + line.Data);
            }
        };

        _peer.Start();
        _peer.BeginOutputReadLine();
        _peer.BeginErrorReadLine();
        var port = await listening.Task.WaitAsync(Timeout);

        _connection = await new TcpConnectionFactory(new TcpTransportOptions(), _pool).ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        _session = new YamuxSession(_connection, isClient: true);
        _session.Start();
    }

    public async Task DisposeAsync()
    {
        await _session.DisposeAsync();
        await _connection.DisposeAsync();
        _peer.Kill(entireProcessTree: true);
        await _peer.WaitForExitAsync();
        _peer.Dispose();
        _pool.Dispose();
    }

    [Fact]
    public async Task StreamsWeOpen_AreEchoedByTheNodePeer_PastTheWindow()
    {
        var streams = Enumerable.Range(0, 8).Select(async _ =>
        {
            await using var stream = _session.OpenStream();
            var data = RandomNumberGenerator.GetBytes((1024 * 1024) + 123);
            var sending = Task.Run(async () =>
            {
                for (var offset = 0; offset < data.Length; offset += 50_000)
                {
                    await stream.Transport.Output.WriteAsync(data.AsMemory(offset, Math.Min(50_000, data.Length - offset)));
                }

                await stream.Transport.Output.CompleteAsync();
            });
            var echoed = await YamuxSessionTests.ReadToEndAsync(stream);
            await sending;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(echoed));
        });

        await Task.WhenAll(streams).WaitAsync(Timeout);
        Assert.True(_peer.HasExited is false, Output());
    }

    [Fact]
    public async Task AStreamTheNodePeerOpens_IsAccepted_AndHalfCloseWorksBothWays()
    {
        await using var stream = (await _session.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        Assert.Equal(0u, stream.Id % 2);
        Assert.Equal("from-node", Encoding.UTF8.GetString(await YamuxSessionTests.ReadToEndAsync(stream)));

        await stream.Transport.Output.WriteAsync(Encoding.UTF8.GetBytes("dotnet-reply"));
        await stream.Transport.Output.CompleteAsync();
        var deadline = DateTime.UtcNow + Timeout;
        while (!Output().Contains("node-got:dotnet-reply", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the node peer never reported the reply; it said: {Output()}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task ThePeerAnswersOurPings()
    {
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await _session.PingAsync().WaitAsync(Timeout) < Timeout);
        }
    }

    /// <summary>Installs the peer's npm packages once (the lock file pins them); returns its folder.</summary>
    private static async Task<string> InstallPeerAsync()
    {
        var folder = Path.Combine(GoPeerBuild.RepositoryRoot(), "tests", "Forwarder.Transports.Tests", "Mux", "interop");
        await InstallLock.WaitAsync();
        try
        {
            if (!Directory.Exists(Path.Combine(folder, "node_modules", "@chainsafe", "libp2p-yamux")))
            {
                using var npm = Process.Start(new ProcessStartInfo("npm", ["ci", "--no-audit", "--no-fund"]) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true })!;
                var output = npm.StandardOutput.ReadToEndAsync();
                var error = npm.StandardError.ReadToEndAsync();
                await npm.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
                Assert.True(npm.ExitCode == 0, $"npm ci failed in {folder}: {await output}{await error}");
            }
        }
        finally
        {
            InstallLock.Release();
        }

        return folder;
    }

    private string Output()
    {
        lock (_peerOutput)
        {
            return string.Join('\n', _peerOutput);
        }
    }
}
