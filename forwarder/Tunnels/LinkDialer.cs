using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>A yamux session over mutually authenticated TLS, and the connection under it.</summary>
internal sealed record DialledLink(YamuxSession Session, ConnectionContext Connection);

/// <summary>Dials the TLS 1.3 connections links and relay sessions run on, and starts yamux over them.</summary>
internal static class LinkDialer
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>yamux as this node's links and relay sessions use it: the link window, pings at the node's keep-alive, stream buffers from the transport's pool.</summary>
    public static YamuxOptions Options(TimeSpan keepAlive, MemoryPool<byte> pool)
        => NodeCredentials.LinkMux with { KeepAliveInterval = keepAlive, PingTimeout = keepAlive, Pool = pool };

    /// <summary>How long an ended link's last frames may wait for a peer that stopped reading (yamux's default).</summary>
    public static TimeSpan CloseTimeout => NodeCredentials.LinkMux.CloseTimeout;

    /// <summary>Connects to <paramref name="endPoint"/>, where only <paramref name="expectedName"/>'s certificate (for the role <paramref name="protocol"/> implies) is accepted.</summary>
    /// <exception cref="Exception">Connect, TLS or authentication failed, or the handshake took longer than 10 s.</exception>
    public static async Task<DialledLink> DialAsync(
        TcpConnectionFactory tcp,
        EndPoint endPoint,
        NodeCredentials credentials,
        string expectedName,
        SslApplicationProtocol protocol,
        YamuxOptions options,
        CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(HandshakeTimeout);
        var connection = await tcp.ConnectAsync(endPoint, deadline.Token).ConfigureAwait(false);
        return await HandshakeAsync(connection, credentials, expectedName, protocol, options, deadline.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// TLS as the client over <paramref name="connection"/>, however it was opened (dialled, or
    /// through both NATs by simultaneous open), then yamux; the connection is disposed when this throws.
    /// </summary>
    /// <exception cref="Exception">TLS or authentication failed, or the handshake took longer than 10 s.</exception>
    public static async Task<DialledLink> HandshakeAsync(
        ConnectionContext connection,
        NodeCredentials credentials,
        string expectedName,
        SslApplicationProtocol protocol,
        YamuxOptions options,
        CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(HandshakeTimeout);
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        var verdict = new PeerVerdict();
        try
        {
            await ssl.AuthenticateAsClientAsync(credentials.ClientOptions(expectedName, protocol, verdict), deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            if (verdict.Reason is { } reason)
            {
                throw new AuthenticationException($"{expectedName} refused: {reason}", ex);
            }

            throw;
        }

        var link = new TlsConnection(connection, ssl, carrier, options.CloseTimeout);
        var session = new YamuxSession(link, isClient: true, options);
        session.Start();
        return new DialledLink(session, link);
    }

    /// <summary>Why a session ended, for the log.</summary>
    public static string EndReason(YamuxSession session)
        => session.Failure?.Message ?? (session.RemoteGoAwayCode is { } code ? $"go-away {code}" : "closed");

    /// <summary>The pause before attempt <paramref name="failures"/> + 1: 250 ms doubling up to 30 s.</summary>
    public static TimeSpan Backoff(int failures) => TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 10))));
}
