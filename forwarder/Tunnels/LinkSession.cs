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

    /// <summary>The peer did not take the rest within the close timeout after the link ended: what was queued for it was dropped, the connection aborted.</summary>
    bool OutputCut { get; }

    /// <summary>A new stream asking for <paramref name="request"/>: the stream once connected, else the answer (null: the link broke first).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    Task<(ConnectionContext? Stream, TunnelStatus? Status)> RequestAsync(TunnelRequest request, CancellationToken cancellationToken);
}

/// <summary>A TLS 1.3 link over TCP with yamux streams: dialled (direct-tcp), or opened through both NATs (punched-tcp).</summary>
internal sealed class YamuxLinkSession(DialledLink link, LinkPath path = LinkPath.DirectTcp) : ILinkSession
{
    public LinkPath Path => path;

    public Task Completion => link.Session.Completion;

    public string EndReason => LinkDialer.EndReason(link.Session);

    public bool Draining => false;

    public bool OutputCut => link.Session.OutputCut;

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
    private int _streamsCut;
    private Task _drained = Task.CompletedTask;

    public QuicLinkSession(QuicConnection connection, Func<ConnectionContext, Task> serve)
    {
        (_connection, _serve) = (connection, serve);
        Completion = AcceptLoopAsync();
    }

    public LinkPath Path => LinkPath.DirectQuic;

    public Task Completion { get; }

    public string EndReason => Volatile.Read(ref _endReason);

    public bool Draining => Volatile.Read(ref _draining) != 0;

    /// <summary>Never: a QUIC connection's close is bounded by QUIC itself (its closing period).</summary>
    public bool OutputCut => false;

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

    /// <summary>The streams still open when the drain ran out of time, and were reset; 0 while it has not.</summary>
    public int StreamsCut => Volatile.Read(ref _streamsCut);

    /// <summary>
    /// Takes no new streams of this node's (it is replaced by another link to the same peer), and
    /// closes once the streams open on it, either end's, are done and every byte of them acknowledged,
    /// or after <paramref name="deadline"/>: then the streams left are reset (the connection closes
    /// under them) rather than pin the replaced link and its socket for as long as they live.
    /// </summary>
    public void Drain(TimeSpan deadline)
    {
        if (Interlocked.Exchange(ref _draining, 1) == 0)
        {
            _drained = CloseWhenIdleAsync(deadline);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await Completion.ConfigureAwait(false);

        // A drain's own close may still be in flight (the connection's second dispose returns at
        // once): the socket and native state are released only once it is done.
        await Volatile.Read(ref _drained).ConfigureAwait(false);
    }

    private async Task CloseWhenIdleAsync(TimeSpan deadline)
    {
        try
        {
            await _connection.WhenNoStreamsAsync().WaitAsync(deadline).ConfigureAwait(false);
            Volatile.Write(ref _endReason, "replaced by the other link between the nodes, and drained");
        }
        catch (TimeoutException)
        {
            var cut = _connection.StreamCount;
            Volatile.Write(ref _streamsCut, cut);
            Volatile.Write(ref _endReason, $"replaced by the other link between the nodes; its drain ran out after {deadline.TotalSeconds:0.#} s and the {cut} stream(s) still on it were reset");
        }

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
