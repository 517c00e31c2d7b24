using System.Diagnostics;
using System.Globalization;
using System.Net;
using Forwarder.Transports.Quic;
using Xunit.Abstractions;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// A 4 MiB echo over a link that drops 5% of the UDP packets each way (<see cref="LossyLink"/>),
/// against quic-go in the namespace: our client, then our listener. Everything must arrive intact,
/// through 64 KiB windows, with packets lost in both directions.
/// </summary>
public sealed class QuicLossTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Payload = 4 * 1024 * 1024;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(QuicGoInteropTests.NodeName);
    private readonly LossyLink _link = new(0.05);
    private readonly Stopwatch _echo = new();
    private QuicGoPeer? _peer;

    // The Go build runs before any test deadline starts: on a loaded machine it alone can take most of one.
    public Task InitializeAsync() => QuicGoPeer.BuildAsync();

    public async Task DisposeAsync()
    {
        if (_peer is not null)
        {
            await _peer.DisposeAsync();
        }

        _link.Dispose();
        _pki.Dispose();
    }

    [Fact]
    public async Task OurClient_EchoThroughQuicGo_OverALossyLink_ArrivesIntact()
    {
        using var cts = new CancellationTokenSource(Deadline);
        _peer = await QuicGoPeer.StartAsync(_link.Namespace, "server", $"{_link.PeerAddress}:0", _pki.CaFile, _pki.ServerCertificateFile, _pki.ServerKeyFile);
        var port = await _peer.ListeningPortAsync(Deadline);

        _echo.Start();
        await using (var client = await QuicConnection.ConnectAsync(new IPEndPoint(_link.PeerAddress, port), QuicGoInteropTests.ClientOptions(_pki, QuicGoInteropTests.NodeName), cts.Token))
        {
            await QuicGoInteropTests.EchoThroughAsync(client, Payload, cts.Token);
        }

        AssertLossBothWays();
    }

    [Fact]
    public async Task QuicGoClient_EchoThroughOurListener_OverALossyLink_ArrivesIntact()
    {
        using var cts = new CancellationTokenSource(Deadline);
        await using var listener = QuicListener.Bind(new IPEndPoint(_link.HostAddress, 0), QuicGoInteropTests.ServerOptions(_pki));
        _peer = await QuicGoPeer.StartAsync(_link.Namespace, "client", $"{_link.HostAddress}:{listener.LocalEndPoint.Port}", _pki.CaFile, QuicGoInteropTests.NodeName,
            "1", Payload.ToString(CultureInfo.InvariantCulture));

        await using var server = await listener.AcceptAsync(cts.Token);
        _echo.Start();
        await QuicGoInteropTests.EchoAsync(await server.AcceptStreamAsync(cts.Token), cts.Token);
        await _peer.WaitForAsync(lines => lines.Contains("done") || lines.Any(line => line.StartsWith("error", StringComparison.Ordinal)), "the quic-go client finished", Deadline);

        Assert.Contains("stream-ok 0", _peer.Lines());
        AssertLossBothWays();
    }

    private void AssertLossBothWays()
    {
        var (host, peer) = _link.Dropped();
        output.WriteLine($"4 MiB echoed in {_echo.Elapsed.TotalSeconds:F1} s; dropped {host} packets to us, {peer} to quic-go");
        Assert.True(host > 0 && peer > 0, $"the link dropped {host} packets to us and {peer} to quic-go: the test ran without loss");
        Assert.DoesNotContain(_peer!.Lines(), line => line.StartsWith("error", StringComparison.Ordinal));
    }
}
