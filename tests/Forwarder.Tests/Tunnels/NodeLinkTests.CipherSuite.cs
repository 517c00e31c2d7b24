using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.Versioning;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tls;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <content>Which TLS 1.3 suite a link runs: AES-128-GCM, the cheapest per byte with AES-NI, whichever node dials.</content>
public sealed partial class NodeLinkTests
{
    [Fact]
    [UnsupportedOSPlatform("windows")] // Windows' TLS takes no suite policy; the link leaves it its own order.
    public async Task ALink_RunsAes128Gcm_EvenWhenTheDiallerPrefersAes256()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);
        using var credentials = Credentials("edge-a");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var link = await LinkDialer.DialAsync(Tcp(), LinkEndPoint(nodeB), credentials, "edge-b", NodeCredentials.LinkProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), timeout.Token);
        await using (link.Connection)
        await using (link.Session)
        {
            Assert.Equal(TlsCipherSuite.TLS_AES_128_GCM_SHA256, Assert.IsType<TlsConnection>(link.Connection).CipherSuite);
        }

        // OpenSSL's own order, AES-256 first, as a node without the preference dials: the accepting node's order decides.
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(LinkEndPoint(nodeB), timeout.Token);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
        var options = credentials.ClientOptions("edge-b", NodeCredentials.LinkProtocol, new PeerVerdict());
        options.CipherSuitesPolicy = new CipherSuitesPolicy([TlsCipherSuite.TLS_AES_256_GCM_SHA384, TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256, TlsCipherSuite.TLS_AES_128_GCM_SHA256]);
        await ssl.AuthenticateAsClientAsync(options, timeout.Token);
        Assert.Equal(TlsCipherSuite.TLS_AES_128_GCM_SHA256, ssl.NegotiatedCipherSuite);
    }
}
