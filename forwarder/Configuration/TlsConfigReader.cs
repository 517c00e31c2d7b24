using System.Security.Authentication;
using System.Security.Cryptography;
using Forwarder.Tls;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// Reads a listener's <c>tls</c> section: one <c>certificate</c> and <c>key</c>, or a list of
/// <c>certificates</c> chosen by SNI, plus <c>minVersion</c> and <c>handshakeTimeout</c>. Each
/// pair is loaded once here, so a missing file, a bad PEM or a key that does not match its
/// certificate is an error at its own line, before the config is applied.
/// </summary>
internal static class TlsConfigReader
{
    public static TlsConfig? Read(YamlFieldReader reader, YamlNode node, string path, string configFile)
    {
        var fields = reader.Mapping(node, path, "certificate", "key", "certificates", "minVersion", "handshakeTimeout");
        if (fields is null)
        {
            return null;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(configFile)) ?? Directory.GetCurrentDirectory();
        List<CertificateFiles> certificates = [];
        if (fields.ContainsKey("certificates"))
        {
            if (fields.ContainsKey("certificate") || fields.ContainsKey("key"))
            {
                reader.Error(fields["certificates"], $"{path}.certificates", "give either certificate and key, or a list of certificates, not both");
            }

            var sequence = reader.Sequence(fields["certificates"], $"{path}.certificates");
            for (var i = 0; sequence is not null && i < sequence.Children.Count; i++)
            {
                var itemPath = $"{path}.certificates[{i}]";
                if (reader.Mapping(sequence.Children[i], itemPath, "certificate", "key") is { } pair
                    && ReadPair(reader, pair, sequence.Children[i], itemPath, folder) is { } files)
                {
                    certificates.Add(files);
                }
            }

            if (sequence is { Children.Count: 0 })
            {
                reader.Error(sequence, $"{path}.certificates", "needs at least one certificate");
            }
        }
        else if (ReadPair(reader, fields, node, path, folder) is { } files)
        {
            certificates.Add(files);
        }

        var minVersion = reader.String(fields, path, "minVersion", required: false, node) ?? "1.2";
        SslProtocols? protocols = minVersion switch
        {
            "1.2" => SslProtocols.Tls12 | SslProtocols.Tls13,
            "1.3" => SslProtocols.Tls13,
            _ => null,
        };
        if (protocols is null)
        {
            reader.Error(fields["minVersion"], $"{path}.minVersion", $"expected \"1.2\" or \"1.3\", got '{minVersion}'");
        }

        var handshakeTimeout = reader.Duration(fields, path, "handshakeTimeout", TlsConfig.DefaultHandshakeTimeout, TimeSpan.FromMilliseconds(1));
        return new TlsConfig(certificates, protocols ?? SslProtocols.Tls12 | SslProtocols.Tls13, handshakeTimeout);
    }

    private static CertificateFiles? ReadPair(YamlFieldReader reader, Dictionary<string, YamlNode> fields, YamlNode owner, string path, string folder)
    {
        var certificate = reader.String(fields, path, "certificate", required: true, owner);
        var key = reader.String(fields, path, "key", required: true, owner);
        if (certificate is null || key is null)
        {
            return null;
        }

        var files = new CertificateFiles(Path.GetFullPath(certificate, folder), Path.GetFullPath(key, folder));
        try
        {
            using var loaded = CertificateChain.Load(files);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            reader.Error(fields["certificate"], $"{path}.certificate", $"cannot load {files.Certificate} with key {files.Key}: {ex.Message}");
            return null;
        }

        return files;
    }
}
