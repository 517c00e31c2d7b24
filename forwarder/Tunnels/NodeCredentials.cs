using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Quic;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// This node's (or relay's) side of mutual TLS in the mesh: it presents its own certificate and
/// accepts the other end only if that end's certificate chains to the mesh CA, and to it alone
/// (the system's trust store plays no part), is meant for the TLS role it plays (server or
/// client authentication) and proves the mesh role it must have (<see cref="MeshIdentity"/>:
/// whoever dials in is a node; who answers is a node on a link, a relay on a relay session),
/// and, when dialling, names the node or relay that was meant to answer. Its own certificate and
/// the CA are re-read when their files change. TLS 1.3 only.
/// </summary>
internal sealed class NodeCredentials : IDisposable
{
    /// <summary>The ALPN protocol of node links, so nothing else mistakes a link for its own traffic.</summary>
    public static readonly SslApplicationProtocol LinkProtocol = new("forwarder-link/1");

    /// <summary>The ALPN protocol between a node and a relay.</summary>
    public static readonly SslApplicationProtocol RelayProtocol = new("forwarder-relay/1");

    /// <summary>
    /// yamux as links use it: a 4 MiB window per stream, so one stream is not held to 256 KiB per
    /// round trip (the spec's default) on a fast path between nodes; a full data frame with its
    /// header is exactly four whole TLS records (the writer hands TLS 64 KiB at a time), where
    /// 64 KiB of data made a fifth record of the frame's last 12 bytes, with its own tag and read.
    /// </summary>
    public static readonly YamuxOptions LinkMux = new() { ReceiveWindow = 4 * 1024 * 1024, MaxFrameData = (4 * TlsRecordData) - YamuxHeader.Size };

    /// <summary>The most plaintext one TLS record carries.</summary>
    private const int TlsRecordData = 16 * 1024;

    /// <summary>
    /// TLS 1.3's suites, AES-128-GCM first: OpenSSL's own order puts AES-256-GCM first, which costs
    /// a link 5-17% more per byte here for no strength a link needs. The accepting node's order
    /// decides, so one of this version runs AES-128 whichever version dials. The others stay
    /// allowed. Windows' TLS takes no policy (and has its own order).
    /// </summary>
    private static readonly CipherSuitesPolicy? LinkSuites = OperatingSystem.IsWindows() ? null : new([
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    ]);

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly ServerCertificate _identity;
    private readonly MeshTrust _trust;
    private readonly CertificateFiles _files;
    private readonly string _authority;

    public NodeCredentials(NodeConfig config, ILogger logger)
        : this(config.Name, config.Identity, config.Authority, logger)
    {
    }

    /// <param name="name">This node's (or relay's) name, the one its certificate proves (for the log of its reloads).</param>
    public NodeCredentials(string name, CertificateFiles identity, string authority, ILogger logger)
    {
        _identity = new ServerCertificate(identity, name, logger, static _ => { });
        _trust = new MeshTrust(authority, logger);
        (_files, _authority) = (identity, authority);
    }

    /// <summary>
    /// For accepting nodes (on links, or at a relay with <see cref="RelayProtocol"/>): the node is
    /// admitted if its certificate passes and <paramref name="refuses"/> has nothing against its
    /// name; the outcome, and why a node was refused, are left in <paramref name="verdict"/>.
    /// </summary>
    public SslServerAuthenticationOptions ServerOptions(SslApplicationProtocol protocol, PeerVerdict verdict, Func<string, string?>? refuses = null) => new()
    {
        ServerCertificateContext = _identity.Current.Context,
        ClientCertificateRequired = true,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => verdict.Decide(Check(certificate, ClientAuthentication, MeshRole.Node), refuses),
        EnabledSslProtocols = SslProtocols.Tls13,
        CipherSuitesPolicy = LinkSuites,
        ApplicationProtocols = [protocol],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    /// <summary>For dialling <paramref name="peer"/>: only its certificate will do, a node's on a link, a relay's with <see cref="RelayProtocol"/>.</summary>
    public SslClientAuthenticationOptions ClientOptions(string peer, SslApplicationProtocol protocol, PeerVerdict verdict) => new()
    {
        TargetHost = peer,
        ClientCertificateContext = _identity.Current.Context,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => verdict.Decide(
            Check(certificate, ServerAuthentication, protocol == RelayProtocol ? MeshRole.Relay : MeshRole.Node),
            name => name == peer ? null : $"it proves '{name}', not '{peer}'"),
        EnabledSslProtocols = SslProtocols.Tls13,
        CipherSuitesPolicy = LinkSuites,
        ApplicationProtocols = [protocol],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    /// <summary>
    /// A QUIC link's connection-level window: room for every stream's own window at once, so only
    /// the stream windows bound what is buffered, as on a yamux link. With QUIC's usual 1 MiB, a few
    /// streams whose far application stopped reading (four of 256 KiB) took the whole window and
    /// every other stream on the link, new ones too, waited behind them: an iperf3 -P 100 run
    /// across the NAT lab left the punched link taking no stream at all.
    /// </summary>
    private static readonly int QuicLinkConnectionWindow = LinkMux.MaxStreams * QuicLinkStreamWindow;

    /// <summary>A QUIC link stream's window: QUIC's usual.</summary>
    private const int QuicLinkStreamWindow = 256 * 1024;

    /// <summary>How many pings fit in a QUIC link's idle timeout: three go unanswered before it ends, and the fourth interval leaves the third's answer time to come.</summary>
    private const int QuicPingsPerIdleTimeout = 4;

    /// <summary>The shortest idle timeout a QUIC link gets from a short keep-alive: a loaded machine may hold a ping back a second or two.</summary>
    private static readonly TimeSpan QuicMinIdleTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The idle timeout of a link with a long keep-alive: the QUIC transport's own default.</summary>
    private static readonly TimeSpan QuicMaxIdleTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// For accepting QUIC links: as many streams at once as a yamux link takes (QUIC's default of 100
    /// held the 101st concurrent connection to a peer back). GnuTLS asks for a client certificate and this class's checks, on
    /// the mesh CA as <see cref="MeshTrust"/> holds it, decide exactly as on a TCP link; each
    /// refusal goes to <paramref name="refused"/>.
    /// </summary>
    public QuicServerOptions QuicServerOptions(Func<string, string?> refuses, Action<PeerVerdict> refused) => new()
    {
        MaxIncomingBidirectionalStreams = LinkMux.MaxStreams,
        StreamWindow = QuicLinkStreamWindow,
        ConnectionWindow = QuicLinkConnectionWindow,
        Alpn = LinkProtocol.ToString(),
        CertificateFile = _files.Certificate,
        KeyFile = _files.Key,
        ValidatePeerCertificate = certificate =>
        {
            var verdict = new PeerVerdict();
            if (verdict.Decide(Check(certificate, ClientAuthentication, MeshRole.Node), refuses))
            {
                return null;
            }

            refused(verdict);
            return verdict.Reason;
        },
    };

    /// <summary>
    /// For dialling <paramref name="peer"/> over QUIC: GnuTLS checks the chain to the CA file and the
    /// name, then the same checks as <see cref="ClientOptions"/>; pings after <paramref name="keepAlive"/>
    /// of quiet keep the link, and any NAT mapping under it, alive. A link silent for four keep-alive
    /// intervals (at least 5 s, at most QUIC's usual 30 s) is dead, as a TCP link is after a ping
    /// unanswered: the streams on it are reset and new ones take another way, rather than hang for
    /// 30 s. Where the cap bites (a keep-alive above 7.5 s) the pings come a quarter of the idle
    /// timeout apart, not the keep-alive: three of them always fit before the link is given up, and
    /// an idle link never times out before its next ping is due.
    /// </summary>
    public QuicClientOptions QuicClientOptions(string peer, PeerVerdict verdict, TimeSpan keepAlive)
    {
        var idleTimeout = TimeSpan.FromTicks(Math.Clamp(QuicPingsPerIdleTimeout * keepAlive.Ticks, QuicMinIdleTimeout.Ticks, QuicMaxIdleTimeout.Ticks));
        return new()
        {
            MaxIncomingBidirectionalStreams = LinkMux.MaxStreams,
            StreamWindow = QuicLinkStreamWindow,
            ConnectionWindow = QuicLinkConnectionWindow,
            KeepAliveInterval = TimeSpan.FromTicks(Math.Min(keepAlive.Ticks, idleTimeout.Ticks / QuicPingsPerIdleTimeout)),
            IdleTimeout = idleTimeout,
            Alpn = LinkProtocol.ToString(),
            ServerName = peer,
            CaFile = _authority,
            CertificateFile = _files.Certificate,
            KeyFile = _files.Key,
            ValidatePeerCertificate = certificate => verdict.Decide(
                Check(certificate, ServerAuthentication, MeshRole.Node),
                name => name == peer ? null : $"it proves '{name}', not '{peer}'") ? null : verdict.Reason,
        };
    }

    public void Dispose() => _trust.Dispose();

    /// <summary>The name <paramref name="certificate"/> proves for <paramref name="role"/>, if it chains to the mesh CA for <paramref name="usage"/>; else why not.</summary>
    private PeerCheck Check(X509Certificate? certificate, Oid usage, MeshRole role)
    {
        if (certificate is null)
        {
            return new PeerCheck(null, LinkRefusal.Certificate, "no certificate");
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_trust.Current);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // A peer's certificate may name an issuer URL (AIA): never fetch it, on a path any peer can reach.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.ApplicationPolicy.Add(usage);
        if (!chain.Build(leaf))
        {
            var status = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).FirstOrDefault(s => s.Length > 0) ?? "no chain";
            return new PeerCheck(null, LinkRefusal.Certificate, $"certificate {leaf.Subject} does not chain to the mesh CA for {usage.FriendlyName ?? usage.Value} ({status})");
        }

        return MeshIdentity.Of(leaf) switch
        {
            var (r, name) when r == role => new PeerCheck(name, null, string.Empty),
            var (r, name) => new PeerCheck(null, LinkRefusal.Role, $"certificate of {MeshIdentity.Uri(r, name)}, where a {role.ToString().ToLowerInvariant()} was expected"),
            null => new PeerCheck(null, LinkRefusal.Role, $"certificate {leaf.Subject} from the mesh CA proves no forwarder://{role.ToString().ToLowerInvariant()}/NAME name"),
        };
    }
}

/// <summary>What the certificate checks made of one end: its name, or why it was refused.</summary>
internal readonly record struct PeerCheck(string? Name, LinkRefusal? Refusal, string Reason);

/// <summary>
/// The outcome of one handshake's check of the other end, left by the validation callback for
/// the code that started the handshake: who it was, or why it was refused (TLS itself only says
/// that the callback said no).
/// </summary>
internal sealed class PeerVerdict
{
    /// <summary>The name the other end proved; null until its certificate passed.</summary>
    public string? Name { get; private set; }

    /// <summary>Why the other end was refused; null when it was not (or the handshake failed before its certificate was checked).</summary>
    public LinkRefusal? Refusal { get; private set; }

    public string? Reason { get; private set; }

    /// <summary>Takes <paramref name="check"/>, then, if it passed, what <paramref name="refuses"/> has against the name (null: nothing); true to go on.</summary>
    public bool Decide(PeerCheck check, Func<string, string?>? refuses)
    {
        if (check.Name is { } name && refuses?.Invoke(name) is { } reason)
        {
            check = new PeerCheck(null, LinkRefusal.Unlisted, reason);
        }

        (Name, Refusal, Reason) = (check.Name, check.Refusal, check.Name is null ? check.Reason : null);
        return check.Name is not null;
    }
}
