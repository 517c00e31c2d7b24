using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <summary>The role and name a mesh certificate proves, as <c>forwarder cert</c> writes them and as peers read them.</summary>
public sealed class MeshIdentityTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-identity-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task TheCertCommand_IssuesNodeAndRelayCertificates_WithTheirRole()
    {
        var (nodes, _, nodeErrors) = await ForwarderProcess.RunAsync("cert", "--out", _directory, "edge-1");
        Assert.True(nodes == 0, nodeErrors);
        var (relays, _, relayErrors) = await ForwarderProcess.RunAsync("cert", "--out", _directory, "--relay", "relay-1");
        Assert.True(relays == 0, relayErrors);

        using var node = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(_directory, "edge-1.pem")));
        using var relay = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(_directory, "relay-1.pem")));
        using var authority = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(_directory, "ca.pem")));
        Assert.Equal((MeshRole.Node, "edge-1"), MeshIdentity.Of(node));
        Assert.Equal((MeshRole.Relay, "relay-1"), MeshIdentity.Of(relay));
        Assert.Null(MeshIdentity.Mismatch(node, MeshRole.Node, "edge-1"));
        Assert.Equal("it is for forwarder://relay/relay-1, not forwarder://node/relay-1", MeshIdentity.Mismatch(relay, MeshRole.Node, "relay-1"));

        // Both name the CA's key, so a CA file holding two CAs of one name still builds the right chain.
        var keyId = authority.Extensions.OfType<X509SubjectKeyIdentifierExtension>().Single().SubjectKeyIdentifierBytes.ToArray();
        Assert.Equal(keyId, node.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().Single().KeyIdentifier!.Value.ToArray());
    }

    [Theory]
    [InlineData(new string[0], null)]
    [InlineData(new[] { "spiffe://mesh/edge-1" }, null)]
    [InlineData(new[] { "forwarder://node/edge-1" }, "node:edge-1")]
    [InlineData(new[] { "spiffe://mesh/x", "forwarder://relay/relay-1" }, "relay:relay-1")]
    [InlineData(new[] { "forwarder://node/edge-1", "forwarder://relay/edge-1" }, null)]
    [InlineData(new[] { "forwarder://admin/edge-1" }, null)]
    [InlineData(new[] { "forwarder://node/edge 1" }, null)]
    public void Of_ReadsExactlyOneForwarderUri(string[] uris, string? expected)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=edge-1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("edge-1");
        foreach (var uri in uris)
        {
            names.AddUri(new Uri(uri));
        }

        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        Assert.Equal(expected, MeshIdentity.Of(certificate) is var (role, name) ? $"{role.ToString().ToLowerInvariant()}:{name}" : null);
    }
}
