using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// A throwaway certificate authority for TLS tests: it issues leaf certificates for DNS names
/// and writes them, with their keys, as the PEM files a listener's config names.
/// </summary>
internal sealed class TestCertificates : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestCertificates()
    {
        var request = new CertificateRequest("CN=Forwarder Test CA", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        Authority = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
    }

    public X509Certificate2 Authority { get; }

    /// <summary>Issues a certificate for <paramref name="names"/> and writes <c>{stem}.pem</c> and <c>{stem}.key</c> into <paramref name="directory"/>.</summary>
    public X509Certificate2 Write(string directory, string stem, params string[] names)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var certificate = Issue(key, names);
        File.WriteAllText(Path.Combine(directory, $"{stem}.pem"), certificate.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, $"{stem}.key"), key.ExportPkcs8PrivateKeyPem());
        return certificate;
    }

    /// <summary>Writes the authority's certificate (for clients such as curl to trust) and returns its path.</summary>
    public string WriteAuthority(string directory)
    {
        var path = Path.Combine(directory, "ca.pem");
        File.WriteAllText(path, Authority.ExportCertificatePem());
        return path;
    }

    /// <summary>A client-side check that accepts exactly the chains this authority issued.</summary>
    public bool Validate(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }

    public void Dispose()
    {
        Authority.Dispose();
        _caKey.Dispose();
    }

    private X509Certificate2 Issue(ECDsa key, string[] names)
    {
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            san.AddDnsName(name);
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        return request.Create(Authority, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(30), serial);
    }
}
