using System.Buffers.Binary;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Configuration;

namespace Forwarder.Tls;

/// <summary>
/// A certificate, its key and intermediates as loaded from their PEM files at one moment, ready
/// for handshakes: the chain is built once here rather than on every handshake.
/// </summary>
internal sealed class CertificateChain : IDisposable
{
    private readonly X509Certificate2Collection _intermediates;

    private CertificateChain(X509Certificate2 leaf, X509Certificate2Collection intermediates, FileStamp stamp)
    {
        Leaf = leaf;
        _intermediates = intermediates;
        Stamp = stamp;
        Context = SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
        DnsNames = NamesOf(leaf);
    }

    public X509Certificate2 Leaf { get; }

    public SslStreamCertificateContext Context { get; }

    /// <summary>The DNS names the certificate is for (wildcards as <c>*.example.com</c>), for SNI.</summary>
    public string[] DnsNames { get; }

    /// <summary>What the files looked like just before they were read.</summary>
    public FileStamp Stamp { get; }

    public static CertificateChain Load(CertificateFiles files)
    {
        var stamp = FileStamp.Of(files);
        var leaf = X509Certificate2.CreateFromPemFile(files.Certificate, files.Key);
        var intermediates = new X509Certificate2Collection();
        intermediates.ImportFromPemFile(files.Certificate);
        intermediates.RemoveAt(0);
        return new CertificateChain(leaf, intermediates, stamp);
    }

    /// <summary>True if the certificate is for <paramref name="serverName"/>, directly or by a one-label wildcard.</summary>
    public bool IsFor(string serverName)
    {
        foreach (var name in DnsNames)
        {
            if (name.StartsWith("*.", StringComparison.Ordinal)
                ? serverName.IndexOf('.') is > 0 and var dot && serverName.AsSpan(dot).Equals(name.AsSpan(1), StringComparison.OrdinalIgnoreCase)
                : serverName.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public void Dispose()
    {
        Leaf.Dispose();
        foreach (var certificate in _intermediates)
        {
            certificate.Dispose();
        }
    }

    private static string[] NamesOf(X509Certificate2 leaf)
    {
        var san = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        if (san is not null)
        {
            return [.. san.EnumerateDnsNames()];
        }

        // Without a SAN extension, old-style certificates name their host in the subject's CN.
        return leaf.GetNameInfo(X509NameType.DnsName, forIssuer: false) is { Length: > 0 } commonName ? [commonName] : [];
    }
}

/// <summary>
/// A digest of what a certificate's two files hold: a change means a new pair was deployed.
/// By content, not by write time and size: the kernel stamps writes with a clock that ticks every
/// few milliseconds, and a renewed certificate can have the very same length.
/// </summary>
internal sealed record FileStamp(UInt128 Certificate, UInt128 Key)
{
    /// <summary>Reads both files, following symbolic links (Kubernetes secret volumes swap a link); a missing file digests as zero.</summary>
    public static FileStamp Of(CertificateFiles files) => new(Digest(files.Certificate), Digest(files.Key));

    private static UInt128 Digest(string path)
    {
        try
        {
            return BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(File.ReadAllBytes(path)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return UInt128.Zero;
        }
    }
}
