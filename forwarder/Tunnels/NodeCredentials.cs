using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Configuration;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// This node's side of mutual TLS between nodes: it presents its own certificate (re-read when
/// its files change) and accepts a peer only if the peer's certificate chains to the mesh CA,
/// and to it alone (the system's trust store plays no part), is meant for the role it plays,
/// and, when dialling, names the node that was meant to answer. TLS 1.3 only.
/// </summary>
internal sealed class NodeCredentials : IDisposable
{
    /// <summary>The ALPN protocol of node links, so nothing else mistakes a link for its own traffic.</summary>
    public static readonly SslApplicationProtocol LinkProtocol = new("forwarder-link/1");

    /// <summary>The ALPN protocol between a node and a relay.</summary>
    public static readonly SslApplicationProtocol RelayProtocol = new("forwarder-relay/1");

    /// <summary>
    /// yamux as links use it: a 4 MiB window per stream, so one stream is not held to 256 KiB per
    /// round trip (the spec's default) on a fast path between nodes.
    /// </summary>
    public static readonly YamuxOptions LinkMux = new() { ReceiveWindow = 4 * 1024 * 1024 };

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly ServerCertificate _identity;
    private readonly X509Certificate2Collection _authority;

    public NodeCredentials(NodeConfig config, ILogger logger)
        : this(config.Name, config.Identity, config.Authority, logger)
    {
    }

    /// <param name="name">This node's (or relay's) name, the DNS name in its certificate.</param>
    public NodeCredentials(string name, CertificateFiles identity, string authority, ILogger logger)
    {
        Name = name;
        _identity = new ServerCertificate(identity, name, logger, static _ => { });
        _authority = LoadAuthority(authority);
    }

    public string Name { get; }

    public static X509Certificate2Collection LoadAuthority(string path)
    {
        var authority = new X509Certificate2Collection();
        authority.ImportFromPemFile(path);
        if (authority.Count == 0)
        {
            throw new CryptographicException("the file holds no certificate");
        }

        return authority;
    }

    /// <summary>For accepting links: any node of the mesh may dial in; its name is read off its certificate.</summary>
    public SslServerAuthenticationOptions ServerOptions() => ServerOptions(LinkProtocol);

    public SslServerAuthenticationOptions ServerOptions(SslApplicationProtocol protocol) => new()
    {
        ServerCertificateContext = _identity.Current.Context,
        ClientCertificateRequired = true,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => PeerName(certificate, ClientAuthentication) is not null,
        EnabledSslProtocols = SslProtocols.Tls13,
        ApplicationProtocols = [protocol],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    /// <summary>For dialling <paramref name="peer"/>: only a certificate for that node name will do.</summary>
    public SslClientAuthenticationOptions ClientOptions(string peer) => ClientOptions(peer, LinkProtocol);

    public SslClientAuthenticationOptions ClientOptions(string peer, SslApplicationProtocol protocol) => new()
    {
        TargetHost = peer,
        ClientCertificateContext = _identity.Current.Context,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => PeerName(certificate, ServerAuthentication) == peer,
        EnabledSslProtocols = SslProtocols.Tls13,
        ApplicationProtocols = [protocol],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    /// <summary>The node name <paramref name="certificate"/> proves, if it chains to the mesh CA for <paramref name="usage"/>; else null.</summary>
    public string? PeerName(X509Certificate? certificate, Oid usage)
    {
        if (certificate is null)
        {
            return null;
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(usage);
        if (!chain.Build(leaf))
        {
            return null;
        }

        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault()?.EnumerateDnsNames().ToArray() ?? [];
        return names.Length == 1 ? names[0] : null;
    }

    /// <summary>The name of the peer at the other end of an authenticated link.</summary>
    public string? PeerName(SslStream stream, bool accepted) => PeerName(stream.RemoteCertificate, accepted ? ClientAuthentication : ServerAuthentication);

    public void Dispose()
    {
        foreach (var certificate in _authority)
        {
            certificate.Dispose();
        }
    }
}
