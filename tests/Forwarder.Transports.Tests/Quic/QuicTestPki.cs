using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>A throwaway CA and certificates it signs, written as PEM files the native peers read.</summary>
internal sealed class QuicTestPki : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 _ca;

    public QuicTestPki(string serverName)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("quic-pki-").FullName;
        var caRequest = new CertificateRequest("CN=quic test mesh CA", _caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        // Outlives every leaf: Issue() runs later than this, and a leaf may not end after its issuer.
        _ca = caRequest.CreateSelfSigned(now.AddHours(-2), now.AddDays(2));
        CaFile = Write("ca.pem", _ca.ExportCertificatePem());
        (ServerCertificateFile, ServerKeyFile) = Issue(serverName);
    }

    public string Directory { get; }
    public string CaFile { get; }
    public string ServerCertificateFile { get; }
    public string ServerKeyFile { get; }

    /// <summary>
    /// A certificate for <paramref name="name"/> (DNS SAN, and <paramref name="uri"/> as a URI SAN when given, as
    /// mesh certificates carry forwarder://node/NAME), good for TLS server and client authentication.
    /// </summary>
    public (string CertificateFile, string KeyFile) Issue(string name, string? uri = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        if (uri is not null)
        {
            names.AddUri(new Uri(uri));
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.Create(_ca, now.AddHours(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(8));
        return (Write($"{name}.pem", certificate.ExportCertificatePem()), Write($"{name}.key", key.ExportPkcs8PrivateKeyPem()));
    }

    private string Write(string name, string pem)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllText(path, pem);
        return path;
    }

    public void Dispose()
    {
        _ca.Dispose();
        _caKey.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
