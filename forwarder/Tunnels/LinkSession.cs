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
/// request and answer as a yamux stream. The peer never opens streams on it; the loop that
/// would accept them is what notices the connection end.
/// </summary>
internal sealed class QuicLinkSession : ILinkSession
{
    private readonly QuicConnection _connection;
    private string _endReason = "closed";

    public QuicLinkSession(QuicConnection connection)
    {
        _connection = connection;
        Completion = WatchAsync();
    }

    public LinkPath Path => LinkPath.DirectQuic;

    public Task Completion { get; }

    public string EndReason => Volatile.Read(ref _endReason);

    public async Task<(ConnectionContext? Stream, TunnelStatus? Status)> RequestAsync(TunnelRequest request, CancellationToken cancellationToken)
    {
        QuicStream stream;
        try
        {
            stream = await _connection.OpenStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (QuicException)
        {
            return (null, null);
        }

        var connection = new QuicStreamConnection(stream, _connection.LocalEndPoint, _connection.RemoteEndPoint);
        var status = await TunnelHandshake.AskAsync(connection, request, cancellationToken).ConfigureAwait(false);
        return (status == TunnelStatus.Connected ? connection : null, status);
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await Completion.ConfigureAwait(false);
    }

    private async Task WatchAsync()
    {
        try
        {
            while (true)
            {
                (await _connection.AcceptStreamAsync().ConfigureAwait(false)).Abort();
            }
        }
        catch (Exception ex)
        {
            Volatile.Write(ref _endReason, ex.Message);
        }
    }
}
