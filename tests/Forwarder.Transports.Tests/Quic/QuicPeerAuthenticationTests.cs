using System.Net;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>Mutual TLS between our ends, and the managed hook where the mesh's own identity rules run.</summary>
public sealed class QuicPeerAuthenticationTests : IDisposable
{
    private const string ServerName = "node-s.mesh.test";
    private const string ClientName = "node-c.mesh.test";
    private const string Alpn = "forwarder-test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(ServerName);

    private QuicServerOptions ServerOptions(Func<System.Security.Cryptography.X509Certificates.X509Certificate2, string?>? validate = null) => new()
    {
        Alpn = Alpn,
        CertificateFile = _pki.ServerCertificateFile,
        KeyFile = _pki.ServerKeyFile,
        ClientCaFile = _pki.CaFile,
        ValidatePeerCertificate = validate,
        HandshakeTimeout = TimeSpan.FromSeconds(20),
    };

    private QuicClientOptions ClientOptions((string Certificate, string Key)? identity) => new()
    {
        Alpn = Alpn,
        ServerName = ServerName,
        CaFile = _pki.CaFile,
        CertificateFile = identity?.Certificate,
        KeyFile = identity?.Key,
    };

    [Fact]
    public async Task Connect_ClientCertificateFromTheMeshCa_ServerSeesTheClientsName()
    {
        string? seen = null;
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0),
            ServerOptions(certificate => { seen = certificate.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.DnsName, false); return null; }));
        using var cts = new CancellationTokenSource(Deadline);

        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(_pki.Issue(ClientName)), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);

        Assert.Equal(ClientName, seen);
        Assert.Equal(ClientName, server.RemoteCertificate?.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.DnsName, false));
    }

    [Fact]
    public async Task Connect_ClientWithoutCertificate_IsRefused()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);

        var error = await Assert.ThrowsAsync<QuicException>(async () =>
        {
            await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(null), cts.Token);
            // TLS 1.3 clients finish before the server has checked them: the refusal arrives as a close.
            var stream = await client.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(new byte[] { 1 }, cts.Token);
            stream.CompleteWrites();
            await stream.ReadAsync(new byte[1], cts.Token);
        });

        Assert.Contains("closed by the peer (error 0x1", error.Message); // CRYPTO_ERROR: 0x100 + the TLS alert
    }

    [Fact]
    public async Task Connect_ClientCertificateFromAnotherCa_IsRefused()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var otherPki = new QuicTestPki("other.mesh.test");
        using var cts = new CancellationTokenSource(Deadline);
        var acceptedAny = listener.AcceptAsync(cts.Token).AsTask();

        var error = await Assert.ThrowsAsync<QuicException>(async () =>
        {
            await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(otherPki.Issue(ClientName)), cts.Token);
            var stream = await client.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(new byte[] { 1 }, cts.Token);
            stream.CompleteWrites();
            await stream.ReadAsync(new byte[1], cts.Token);
        });

        Assert.Contains("closed by the peer (error 0x1", error.Message); // CRYPTO_ERROR: 0x100 + the TLS alert
        Assert.False(acceptedAny.IsCompletedSuccessfully, "the listener accepted a client from another CA");
    }

    [Fact]
    public async Task Connect_ClientValidatorRefusesTheServer_FailsWithTheReason()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions() with { ClientCaFile = null });
        using var cts = new CancellationTokenSource(Deadline);
        var options = ClientOptions(null) with { ValidatePeerCertificate = _ => "it proves 'node-s', not 'node-x'" };

        var error = await Assert.ThrowsAsync<QuicException>(() => QuicConnection.ConnectAsync(listener.LocalEndPoint, options, cts.Token));

        Assert.Contains("it proves 'node-s', not 'node-x'", error.Message);
    }

    public void Dispose() => _pki.Dispose();
}
