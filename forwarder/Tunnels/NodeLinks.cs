using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// The links this node dials to its peers: one long-lived TLS 1.3 connection per peer with a
/// yamux session on it, opened when a stream is first needed, shared by every stream to that
/// peer, and opened again when it drops, with a growing pause between failed attempts so a
/// dead peer is not hammered. A stream asks the peer to connect to a target and carries the
/// connection once the peer says it is made.
/// </summary>
internal sealed partial class NodeLinks(ConfigSource source, TcpConnectionFactory tcp, ForwarderMetrics metrics, ILogger<NodeLinks> logger) : IAsyncDisposable
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, PeerLink> _links = new(StringComparer.Ordinal);
    private NodeCredentials? _credentials;

    /// <summary>Opens a stream to <paramref name="endpoint"/>'s target through the link to its node.</summary>
    /// <exception cref="SocketException">The link or the remote connect failed, with the error a local connect would give.</exception>
    public async ValueTask<ConnectionContext> ConnectAsync(NodeEndPoint endpoint, CancellationToken cancellationToken)
    {
        var link = Link(endpoint.Node);
        var session = await link.SessionAsync(cancellationToken).ConfigureAwait(false);
        YamuxStream stream;
        try
        {
            stream = session.OpenStream();
        }
        catch (YamuxSessionClosedException)
        {
            throw new SocketException((int)SocketError.ConnectionReset);
        }

        try
        {
            TunnelHandshake.WriteConnect(stream.Transport.Output, endpoint.Target);
            await stream.Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
            var status = await TunnelHandshake.ReadStatusAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false);
            if (status == TunnelStatus.Connected)
            {
                var peer = metrics.Peer(endpoint.Node);
                peer.StreamOpened(outbound: true);
                stream.ConnectionClosed.UnsafeRegister(static state => ((PeerMetrics)state!).StreamClosed(), peer);
                return stream;
            }

            throw new SocketException((int)TunnelHandshake.ToSocketError(status));
        }
        catch (Exception ex) when (ex is not SocketException and not OperationCanceledException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw new SocketException((int)SocketError.ConnectionReset);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        PeerLink[] links;
        lock (_links)
        {
            links = [.. _links.Values];
            _links.Clear();
        }

        foreach (var link in links)
        {
            await link.DisposeAsync().ConfigureAwait(false);
        }

        _credentials?.Dispose();
    }

    private PeerLink Link(string node)
    {
        lock (_links)
        {
            if (_links.TryGetValue(node, out var link))
            {
                return link;
            }

            var config = source.Initial.Node ?? throw new SocketException((int)SocketError.HostUnreachable);
            var peer = config.Peer(node) ?? throw new SocketException((int)SocketError.HostUnreachable);
            _credentials ??= new NodeCredentials(config, logger);
            link = new PeerLink(peer, _credentials, tcp, metrics.Peer(peer.Name), logger);
            _links[node] = link;
            return link;
        }
    }

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "Link to node {Peer} at {Address} is up")]
    private static partial void LogLinkUp(ILogger logger, string peer, string address);

    [LoggerMessage(EventId = 702, Level = LogLevel.Warning, Message = "Link to node {Peer} at {Address} failed ({Reason}); next attempt in {Backoff}")]
    private static partial void LogLinkFailed(ILogger logger, string peer, string address, string reason, TimeSpan backoff);

    [LoggerMessage(EventId = 703, Level = LogLevel.Information, Message = "Link to node {Peer} went down ({Reason}); it is opened again when a stream needs it")]
    private static partial void LogLinkDown(ILogger logger, string peer, string reason);

    /// <summary>The link to one peer.</summary>
    private sealed class PeerLink(PeerConfig peer, NodeCredentials credentials, TcpConnectionFactory tcp, PeerMetrics metrics, ILogger logger) : IAsyncDisposable
    {
        private readonly SemaphoreSlim _opening = new(1, 1);
        private YamuxSession? _session;
        private Task _watching = Task.CompletedTask;
        private long _retryAt;
        private int _failures;

        public async ValueTask<YamuxSession> SessionAsync(CancellationToken cancellationToken)
        {
            if (Volatile.Read(ref _session) is { Completion.IsCompleted: false } open)
            {
                return open;
            }

            await _opening.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_session is { Completion.IsCompleted: false } reopened)
                {
                    return reopened;
                }

                if (Environment.TickCount64 < _retryAt)
                {
                    // Backing off after a failure: fail at once, so the balancer moves on.
                    throw new SocketException((int)SocketError.HostUnreachable);
                }

                return await OpenAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _opening.Release();
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_session is { } session)
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }

            await _watching.ConfigureAwait(false);
            _opening.Dispose();
        }

        private async Task<YamuxSession> OpenAsync(CancellationToken cancellationToken)
        {
            ConnectionContext? connection = null;
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(HandshakeTimeout);
                connection = await tcp.ConnectAsync(peer.EndPoint, deadline.Token).ConfigureAwait(false);
                var ssl = new SslStream(new DuplexPipeStream(connection.Transport), leaveInnerStreamOpen: true);
                try
                {
                    await ssl.AuthenticateAsClientAsync(credentials.ClientOptions(peer.Name), deadline.Token).ConfigureAwait(false);
                }
                catch
                {
                    await ssl.DisposeAsync().ConfigureAwait(false);
                    throw;
                }

                var link = new TlsConnection(connection, ssl);
                var session = new YamuxSession(link, isClient: true, NodeCredentials.LinkMux);
                session.Start();
                Volatile.Write(ref _session, session);
                _watching = WatchAsync(session, link);
                _failures = 0;
                metrics.LinkUp();
                LogLinkUp(logger, peer.Name, peer.Address);
                return session;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }

                var backoff = TimeSpan.FromMilliseconds(Math.Min(MaxBackoff.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(_failures++, 10))));
                _retryAt = Environment.TickCount64 + (long)backoff.TotalMilliseconds;
                metrics.LinkFailed();
                LogLinkFailed(logger, peer.Name, peer.Address, ex.Message, backoff);
                throw ex as SocketException ?? new SocketException((int)(ex is OperationCanceledException ? SocketError.TimedOut : SocketError.ConnectionRefused));
            }
        }

        /// <summary>Closes the connection under a session that ended, so the next stream opens a new one.</summary>
        private async Task WatchAsync(YamuxSession session, ConnectionContext connection)
        {
            await session.Completion.ConfigureAwait(false);
            metrics.LinkDown();
            LogLinkDown(logger, peer.Name, session.Failure?.Message ?? (session.RemoteGoAwayCode is { } code ? $"go-away {code}" : "closed"));
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>The dialer upstreams use: endpoints on other nodes go through <see cref="NodeLinks"/>, the rest over TCP.</summary>
internal sealed class TunnelingConnectionFactory(IConnectionFactory tcp, NodeLinks links) : IConnectionFactory
{
    public ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => endpoint is NodeEndPoint remote ? links.ConnectAsync(remote, cancellationToken) : tcp.ConnectAsync(endpoint, cancellationToken);
}
