using System.Security.Authentication;
using Forwarder.Configuration;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Configuration;

/// <summary>The <c>tls</c> section of a listener: its shapes, paths relative to the config file, and errors at their line.</summary>
public sealed class TlsConfigTests : IDisposable
{
    private readonly TestCertificates _authority = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-tlsconfig-").FullName;

    public TlsConfigTests()
    {
        _authority.Write(_directory, "site", "app.test");
        _authority.Write(_directory, "other", "other.test");
    }

    private string ConfigFile => Path.Combine(_directory, "forwarder.yaml");

    public void Dispose()
    {
        _authority.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void OnePair_RelativeToTheConfigFile_WithDefaults()
    {
        var tls = Parse("tls: { certificate: site.pem, key: site.key }").Listeners[0].Tls!;

        var files = Assert.Single(tls.Certificates);
        Assert.Equal(Path.Combine(_directory, "site.pem"), files.Certificate);
        Assert.Equal(Path.Combine(_directory, "site.key"), files.Key);
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, tls.Protocols);
        Assert.Equal(TlsConfig.DefaultHandshakeTimeout, tls.HandshakeTimeout);
    }

    [Fact]
    public void AListOfPairs_AndEveryOption()
    {
        var tls = Parse("""
            tls:
              certificates:
                - { certificate: site.pem, key: site.key }
                - { certificate: other.pem, key: other.key }
              minVersion: "1.3"
              handshakeTimeout: 2s
            """).Listeners[0].Tls!;

        Assert.Equal(["site.pem", "other.pem"], tls.Certificates.Select(c => Path.GetFileName(c.Certificate)));
        Assert.Equal(SslProtocols.Tls13, tls.Protocols);
        Assert.Equal(TimeSpan.FromSeconds(2), tls.HandshakeTimeout);
    }

    [Fact]
    public void AMissingFile_IsAnErrorAtTheCertificateField()
        => AssertSingleError("tls: { certificate: nothere.pem, key: site.key }", "listeners[0].tls.certificate", "nothere.pem");

    [Fact]
    public void AKeyThatIsNotTheCertificates_IsAnError()
        => AssertSingleError("tls: { certificate: site.pem, key: other.key }", "listeners[0].tls.certificate", "other.key");

    [Fact]
    public void AFileThatIsNotPem_IsAnError()
    {
        File.WriteAllText(Path.Combine(_directory, "junk.pem"), "not a certificate");
        AssertSingleError("tls: { certificate: junk.pem, key: site.key }", "listeners[0].tls.certificate", "junk.pem");
    }

    [Fact]
    public void AKeyAlone_IsAnError()
        => AssertSingleError("tls: { key: site.key }", "listeners[0].tls.certificate", "required");

    [Fact]
    public void BothShapesAtOnce_IsAnError()
        => AssertSingleError("tls: { certificate: site.pem, key: site.key, certificates: [ { certificate: other.pem, key: other.key } ] }", "listeners[0].tls.certificates", "not both");

    [Fact]
    public void AnEmptyList_IsAnError()
        => AssertSingleError("tls: { certificates: [] }", "listeners[0].tls.certificates", "at least one");

    [Fact]
    public void AnUnknownVersion_IsAnError()
        => AssertSingleError("tls: { certificate: site.pem, key: site.key, minVersion: '1.1' }", "listeners[0].tls.minVersion", "\"1.2\" or \"1.3\"");

    [Fact]
    public void AnUnknownField_IsAnError()
        => AssertSingleError("tls: { certificate: site.pem, key: site.key, ciphers: all }", "listeners[0].tls.ciphers", "unknown field");

    [Fact]
    public void TlsOnATcpListener_IsAnError()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("""
            listeners:
              - name: raw
                listen: 127.0.0.1:7000
                service: app
                tls: { certificate: site.pem, key: site.key }
            services:
              app:
                endpoints: [ { address: '127.0.0.1:9001' } ]
            """, ConfigFile));
        var only = Assert.Single(error.Errors);
        Assert.StartsWith($"{ConfigFile}:5:", only.ToString(), StringComparison.Ordinal);
        Assert.Contains("listeners[0].tls: applies to http listeners only", only.ToString(), StringComparison.Ordinal);
    }

    private ForwarderConfig Parse(string tls) => ConfigLoader.Parse(Yaml(tls), ConfigFile);

    /// <summary>The listener's <paramref name="tls"/> text starts on line 5.</summary>
    private static string Yaml(string tls) => $"""
        listeners:
          - name: web
            listen: 127.0.0.1:8443
            protocol: http
        {L7.Http1ProxyTests.Indent(tls, 4)}
            routes: [ {"{"} service: app {"}"} ]
        services:
          app:
            endpoints: [ {"{"} address: '127.0.0.1:9001' {"}"} ]
        """;

    private void AssertSingleError(string tls, string field, string message)
    {
        var error = Assert.Throws<ConfigException>(() => Parse(tls));
        var only = Assert.Single(error.Errors);
        Assert.StartsWith($"{ConfigFile}:", only.ToString(), StringComparison.Ordinal);
        Assert.Contains($": {field}: ", only.ToString(), StringComparison.Ordinal);
        Assert.Contains(message, only.ToString(), StringComparison.Ordinal);
    }
}
