using Forwarder.Metrics;
using Forwarder.Transports.Quic;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>One direct link to a peer, whichever transport carries it: tunnel streams are opened on it until it ends.</summary>
internal interface ILinkSession : IAsyncDisposable
{
    LinkPath Path { get; }

    /// <summary>Ends when the link does (never faults).</summary>
    Task Completion { get; }

    /// <summary>Why the link ended, for the log.</summary>
    string EndReason { get; }

    /// <summary>The link is closing once its streams are done: new streams go another way.</summary>
    bool Draining { get; }

    /// <summary>A new stream asking for <paramref name="request"/>: the stream once connected, else the answer (null: the link broke first).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    Task<(ConnectionContext? Stream, TunnelStatus? Status)> RequestAsync(TunnelRequest request, CancellationToken cancellationToken);
}

/// <summary>A TLS 1.3 link over TCP with yamux streams.</summary>
internal sealed class YamuxLinkSession(DialledLink link) : ILinkSession
{
    public LinkPath Path => LinkPath.DirectTcp;

    public Task Completion => link.Session.Completion;

    public string EndReason => LinkDialer.EndReason(link.Session);

    public bool Draining => false;

    public async Task<(ConnectionContext? Stream, TunnelStatus? Status)> RequestAsync(TunnelRequest request, CancellationToken cancellationToken)
        => await TunnelHandshake.RequestAsync(link.Session, request, cancellationToken).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        await link.Session.DisposeAsync().ConfigureAwait(false);
        await link.Connection.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>
/// A QUIC link: one connection to the peer, a QUIC stream per tunnel stream carrying the same
/// request and answer as a yamux stream. Either end may open streams on it (see
/// <see cref="QuicLinkTable"/>: of two links between the same nodes both use the one the
/// lower-named node opened); the loop that accepts the peer's streams hands each to
/// <c>serve</c>, and is what notices the connection end.
/// </summary>
internal sealed class QuicLinkSession : ILinkSession
{
    private readonly QuicConnection _connection;
    private readonly Func<ConnectionContext, Task> _serve;
    private string _endReason = "closed";
    private int _draining;

    public QuicLinkSession(QuicConnection connection, Func<ConnectionContext, Task> serve)
    {
        (_connection, _serve) = (connection, serve);
        Completion = AcceptLoopAsync();
    }

    public LinkPath Path => LinkPath.DirectQuic;

    public Task Completion { get; }

    public string EndReason => Volatile.Read(ref _endReason);

    public bool Draining => Volatile.Read(ref _draining) != 0;

    public async Task<(ConnectionContext? Stream, TunnelStatus? Status)> RequestAsync(TunnelRequest request, CancellationToken cancellationToken)
    {
        QuicStream stream;
        try
        {
            stream = await _connection.OpenStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is QuicException or ObjectDisposedException)
        {
            return (null, null);
        }

        var connection = new QuicStreamConnection(stream, _connection.LocalEndPoint, _connection.RemoteEndPoint);
        var status = await TunnelHandshake.AskAsync(connection, request, cancellationToken).ConfigureAwait(false);
        return (status == TunnelStatus.Connected ? connection : null, status);
    }

    /// <summary>
    /// Takes no new streams of this node's (it is replaced by another link to the same peer), and
    /// closes once the streams open on it, either end's, are done and every byte of them acknowledged.
    /// </summary>
    public void Drain()
    {
        if (Interlocked.Exchange(ref _draining, 1) == 0)
        {
            _ = CloseWhenIdleAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await Completion.ConfigureAwait(false);
    }

    private async Task CloseWhenIdleAsync()
    {
        await _connection.WhenNoStreamsAsync().ConfigureAwait(false);
        Volatile.Write(ref _endReason, "replaced by the other link between the nodes, and drained");
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var stream = await _connection.AcceptStreamAsync().ConfigureAwait(false);
                _ = _serve(new QuicStreamConnection(stream, _connection.LocalEndPoint, _connection.RemoteEndPoint));
            }
        }
        catch (Exception ex)
        {
            if (!Draining)
            {
                Volatile.Write(ref _endReason, ex.Message);
            }
        }
    }
}
