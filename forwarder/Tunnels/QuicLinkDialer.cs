using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using Forwarder.Transports.Quic;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>Dials QUIC node links: the peer's node listener port, over UDP, with the same mesh identity checks as a TCP link.</summary>
internal static class QuicLinkDialer
{
    /// <summary>Connects to <paramref name="endPoint"/>, where only <paramref name="peer"/>'s node certificate is accepted.</summary>
    /// <exception cref="Exception">Resolving, the handshake or authentication failed, or the handshake timed out.</exception>
    /// <param name="serve">Serves the streams the peer opens on the link.</param>
    public static async Task<QuicLinkSession> DialAsync(EndPoint endPoint, NodeCredentials credentials, string peer, TimeSpan keepAlive, Func<ConnectionContext, Task> serve, CancellationToken cancellationToken)
    {
        var target = await ResolveAsync(endPoint, cancellationToken).ConfigureAwait(false);
        var verdict = new PeerVerdict();
        try
        {
            return new QuicLinkSession(await QuicConnection.ConnectAsync(target, credentials.QuicClientOptions(peer, verdict, keepAlive), cancellationToken).ConfigureAwait(false), serve);
        }
        catch (QuicException ex) when (verdict.Reason is { } reason)
        {
            throw new AuthenticationException($"{peer} refused: {reason}", ex);
        }
    }

    public static async ValueTask<IPEndPoint> ResolveAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        switch (endPoint)
        {
            case IPEndPoint ip:
                return ip;
            case DnsEndPoint dns:
                var addresses = await System.Net.Dns.GetHostAddressesAsync(dns.Host, cancellationToken).ConfigureAwait(false);
                // IPv4 first: the punching and relay sockets are IPv4.
                var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault();
                return new IPEndPoint(address ?? throw new SocketException((int)SocketError.HostNotFound), dns.Port);
            default:
                throw new NotSupportedException($"QUIC links dial IP or DNS endpoints, not {endPoint}");
        }
    }
}
