using System.Collections.Concurrent;
using System.Formats.Asn1;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// The check node links need on QUIC, through <see cref="QuicConnectionOptions.ValidatePeerCertificate"/>: the
/// rules forwarder/Tunnels/NodeCredentials.Check applies to TCP links (the leaf chains to the mesh CA for the
/// right usage and proves one forwarder://ROLE/NAME name), refusing a peer by that name.
/// </summary>
public sealed class QuicMeshIdentityTests : IDisposable
{
    private const string ServerName = "node-s.mesh.test";
    private const string Alpn = "forwarder-link/1";
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(ServerName);
    private readonly ConcurrentQueue<string> _refusals = new();

    [Fact]
    public async Task Accept_ValidatorListsOneNode_AdmitsItAndRefusesAnotherMeshNodeByName()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new QuicServerOptions
        {
            Alpn = Alpn,
            CertificateFile = _pki.ServerCertificateFile,
            KeyFile = _pki.ServerKeyFile,
            ClientCaFile = _pki.CaFile,
            ValidatePeerCertificate = MeshCheck(ClientAuthentication, "node", name => name == "node-a"),
        });
        using var cts = new CancellationTokenSource(Deadline);

        await using var admitted = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(_pki.Issue("node-a.mesh.test", "forwarder://node/node-a")), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);
        var error = await Assert.ThrowsAsync<QuicException>(async () =>
        {
            await using var intruder = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(_pki.Issue("node-b.mesh.test", "forwarder://node/node-b")), cts.Token);
            // TLS 1.3 clients finish before the server has checked them: the refusal arrives as a close.
            var stream = await intruder.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(new byte[] { 1 }, cts.Token);
            await stream.ReadAsync(new byte[1], cts.Token);
        });

        Assert.Equal(["forwarder://node/node-a"], Uris(server.RemoteCertificate!));
        Assert.Contains("closed by the peer (error 0x1", error.Message); // CRYPTO_ERROR: the handshake was refused
        Assert.Equal(["forwarder://node/node-b is not a listed peer"], _refusals);
    }

    [Fact]
    public async Task Connect_ServerCertificateOfARelay_ClientRefusesItWhereANodeWasExpected()
    {
        var (relayCertificate, relayKey) = _pki.Issue(ServerName, "forwarder://relay/node-s");
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0),
            new QuicServerOptions { Alpn = Alpn, CertificateFile = relayCertificate, KeyFile = relayKey });
        using var cts = new CancellationTokenSource(Deadline);
        var options = ClientOptions(null) with { ValidatePeerCertificate = MeshCheck(ServerAuthentication, "node", name => name == "node-s") };

        var error = await Assert.ThrowsAsync<QuicException>(() => QuicConnection.ConnectAsync(listener.LocalEndPoint, options, cts.Token));

        Assert.Contains("forwarder://relay/node-s, where a node was expected", error.Message);
    }

    private QuicClientOptions ClientOptions((string Certificate, string Key)? identity) => new()
    {
        Alpn = Alpn,
        ServerName = ServerName,
        CaFile = _pki.CaFile,
        CertificateFile = identity?.Certificate,
        KeyFile = identity?.Key,
    };

    /// <summary>NodeCredentials.Check's rules as a validator: mesh CA chain for <paramref name="usage"/>, then role, then the name list.</summary>
    private Func<X509Certificate2, string?> MeshCheck(string usage, string role, Func<string, bool> listed) => certificate =>
    {
        using var ca = X509CertificateLoader.LoadCertificateFromFile(_pki.CaFile);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(usage));
        var names = Uris(certificate).Where(uri => uri.StartsWith("forwarder://", StringComparison.Ordinal)).ToList();
        var refusal = !chain.Build(certificate) ? $"certificate {certificate.Subject} does not chain to the mesh CA for {usage}"
            : names.Count != 1 ? $"certificate {certificate.Subject} proves no single forwarder:// name"
            : !names[0].StartsWith($"forwarder://{role}/", StringComparison.Ordinal) ? $"certificate of {names[0]}, where a {role} was expected"
            : !listed(names[0][$"forwarder://{role}/".Length..]) ? $"{names[0]} is not a listed peer"
            : null;
        if (refusal is not null)
        {
            _refusals.Enqueue(refusal);
        }

        return refusal;
    };

    private static List<string> Uris(X509Certificate2 certificate)
    {
        var uris = new List<string>();
        if (certificate.Extensions["2.5.29.17"] is not { } names)
        {
            return uris;
        }

        var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
        var reader = new AsnReader(names.RawData, AsnEncodingRules.DER).ReadSequence();
        while (reader.HasData)
        {
            if (reader.PeekTag() == uriTag)
            {
                uris.Add(reader.ReadCharacterString(UniversalTagNumber.IA5String, uriTag));
            }
            else
            {
                reader.ReadEncodedValue();
            }
        }

        return uris;
    }

    public void Dispose() => _pki.Dispose();
}
