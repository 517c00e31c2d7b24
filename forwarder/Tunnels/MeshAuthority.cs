using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Forwarder.Tunnels;

/// <summary>
/// The mesh's certificate authority for a quick start (<c>forwarder cert</c>): an ECDSA P-256 CA
/// kept as <c>ca.pem</c>/<c>ca.key</c> in a folder, which issues node and relay certificates:
/// the role and name as a URI name (<see cref="MeshIdentity"/>), the name also as the DNS name,
/// good for both ends of a TLS connection (server and client authentication).
/// </summary>
internal sealed class MeshAuthority : IDisposable
{
    private const string CertificateFile = "ca.pem";
    private const string KeyFile = "ca.key";

    private MeshAuthority(X509Certificate2 certificate) => Certificate = certificate;

    public X509Certificate2 Certificate { get; }

    /// <summary>Loads the authority in <paramref name="folder"/>, or makes one there when it has none.</summary>
    public static MeshAuthority OpenOrCreate(string folder, TimeSpan validity, out bool created)
    {
        var certificatePath = Path.Combine(folder, CertificateFile);
        var keyPath = Path.Combine(folder, KeyFile);
        created = !File.Exists(certificatePath);
        if (!created)
        {
            return new MeshAuthority(X509Certificate2.CreateFromPemFile(certificatePath, keyPath));
        }

        Directory.CreateDirectory(folder);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Forwarder mesh CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow + validity);
        WritePrivate(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        return new MeshAuthority(certificate);
    }

    /// <summary>Issues a certificate for node <paramref name="name"/> and writes <c>{name}.pem</c> and <c>{name}.key</c>.</summary>
    public X509Certificate2 IssueNode(string name, string folder, TimeSpan validity) => Issue(MeshRole.Node, name, folder, validity);

    /// <summary>Issues a certificate for relay <paramref name="name"/> and writes <c>{name}.pem</c> and <c>{name}.key</c>.</summary>
    public X509Certificate2 IssueRelay(string name, string folder, TimeSpan validity) => Issue(MeshRole.Relay, name, folder, validity);

    public void Dispose() => Certificate.Dispose();

    private X509Certificate2 Issue(MeshRole role, string name, string folder, TimeSpan validity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        names.AddUri(new Uri(MeshIdentity.Uri(role, name)));
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        // Names the issuing key: chains are built right when a CA file holds two CAs of the same name (during a rotation).
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        var notAfter = DateTimeOffset.UtcNow + validity;
        var certificate = request.Create(Certificate, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter < Certificate.NotAfter ? notAfter : Certificate.NotAfter, serial);
        WritePrivate(Path.Combine(folder, $"{name}.key"), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(Path.Combine(folder, $"{name}.pem"), certificate.ExportCertificatePem());
        return certificate;
    }

    /// <summary>Private keys are readable by their owner only.</summary>
    private static void WritePrivate(string path, string pem)
    {
        File.WriteAllText(path, pem);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
