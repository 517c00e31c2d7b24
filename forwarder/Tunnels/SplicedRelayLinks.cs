using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// Links through a relay that splices rather than terminates (<c>relay.mode: splice</c>,
/// <c>node.relayMode: splice</c>): this node asks a relay it is registered with for a
/// rendezvous with the peer, gets a one-time ticket, connects to the relay's splice port with it,
/// and runs the same mutually authenticated TLS 1.3 + yamux link over that connection as over a
/// direct one. The relay only joins the two TCP connections: it holds no key of the nodes' and
/// cannot read or alter the link. The peer's side comes here as an offer over its own relay
/// session (<see cref="AnswerAsync"/>) and serves the link's streams like those of any link.
/// </summary>
/// <param name="serve">Serves one stream of a link a peer opened this way; resolved on use, as it depends on the runtime.</param>
internal sealed partial class SplicedRelayLinks(
    ConfigSource source,
    TcpConnectionFactory tcp,
    Func<ConnectionContext, string, CancellationToken, Task> serve,
    MemoryPool<byte> pool,
    ForwarderMetrics metrics,
    ILogger<SplicedRelayLinks> logger) : IHostedService, IAsyncDisposable
{
    /// <summary>Connect, ticket and the relay's pairing answer; the far half may take a while to come.</summary>
    private static readonly TimeSpan PairingTimeout = TimeSpan.FromSeconds(15);

    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Task, byte> _accepted = new();
    private readonly Lock _lock = new();
    private NodeCredentials? _credentials;

    /// <summary>
    /// A link to <paramref name="peer"/> spliced by the first relay that agrees, with this node
    /// as the TLS client, authenticating the peer's certificate as over a direct link.
    /// </summary>
    /// <exception cref="IOException">No relay would splice (terminating only, the peer refused or does not know how, a bandwidth limit), or the pairing failed.</exception>
    public async Task<ILinkSession> DialAsync(RelayLinks relays, PeerConfig peer, NodeCredentials credentials, YamuxOptions options, CancellationToken cancellationToken)
    {
        TunnelStatus? refusal = null;
        foreach (var (relay, session) in relays.Sessions)
        {
            var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.Splice, peer.Name, "link"), cancellationToken).ConfigureAwait(false);
            if (stream is null)
            {
                refusal = status;
                continue;
            }

            string? ticket;
            await using (stream)
            {
                ticket = await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false);
            }

            if (!TryParseTicket(ticket, out var port, out var bytes))
            {
                throw new IOException($"relay {relay.Name} answered the rendezvous with no ticket");
            }

            // The relay's splice is one more way a TCP connection to the peer can be opened.
            var connection = await PresentAsync(relay, port, bytes, cancellationToken).ConfigureAwait(false);
            var link = await LinkDialer.HandshakeAsync(connection, credentials, peer.Name, NodeCredentials.LinkProtocol, options, cancellationToken).ConfigureAwait(false);
            return new YamuxLinkSession(link, LinkPath.RelaySpliced);
        }

        throw new IOException(refusal is null ? "no relay session is up to splice through" : $"no relay would splice a link to {peer.Name} ({refusal}); streams take the terminating relay");
    }

    /// <summary>
    /// Answers a relay's <see cref="TunnelRequestKind.Spliced"/> offer: Connected when this node
    /// takes it (it splices, and the asker may send it streams), then presents its ticket and
    /// serves the link as its TLS server. Never throws.
    /// </summary>
    public async Task AnswerAsync(ConnectionContext stream, TunnelRequest offer, RelayAddress relay, CancellationToken cancellationToken)
    {
        var node = source.Initial.Node!;
        var refusal = node.RelayMode != RelayMode.Splice ? "node.relayMode is terminate"
            : node.Refuses(offer.Node) is { } reason ? reason
            : !TryParseTicket(offer.Target, out _, out _) ? "the offer holds no ticket"
            : null;
        TunnelHandshake.WriteStatus(stream.Transport.Output, refusal is null ? TunnelStatus.Connected : TunnelStatus.NotAllowed);
        await stream.Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (refusal is not null)
        {
            LogOfferRefused(logger, relay.Name, offer.Node, refusal);
            return;
        }

        TryParseTicket(offer.Target, out var port, out var ticket);
        var accepting = AcceptAsync(node, relay, port, ticket, offer.Node);
        _accepted[accepting] = 0;
        _ = accepting.ContinueWith(static (task, state) => ((ConcurrentDictionary<Task, byte>)state!).TryRemove(task, out _), _accepted, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_accepted.Keys).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        _credentials?.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>PORT/TICKET as the relay hands it out; the ticket is hex.</summary>
    internal static bool TryParseTicket(string? field, out int port, out byte[] ticket)
    {
        (port, ticket) = (0, []);
        var slash = field?.IndexOf('/', StringComparison.Ordinal) ?? -1;
        if (slash < 0 || !int.TryParse(field.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        try
        {
            ticket = Convert.FromHexString(field.AsSpan(slash + 1));
        }
        catch (FormatException)
        {
            return false;
        }

        return ticket.Length == Relay.RelaySplices.TicketLength;
    }

    /// <summary>Connects to the relay's splice port, presents the ticket and waits for the relay to say the other half is in.</summary>
    private async Task<ConnectionContext> PresentAsync(RelayAddress relay, int port, byte[] ticket, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(PairingTimeout);
        var address = await QuicLinkDialer.ResolveAsync(relay.EndPoint, deadline.Token).ConfigureAwait(false);
        var connection = await tcp.ConnectAsync(new IPEndPoint(address.Address, port), deadline.Token).ConfigureAwait(false);
        try
        {
            var output = connection.Transport.Output;
            output.Write(Relay.RelaySplices.Magic);
            output.Write(ticket);
            await output.FlushAsync(deadline.Token).ConfigureAwait(false);

            var input = connection.Transport.Input;
            var result = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
            if (result.Buffer.IsEmpty || result.Buffer.FirstSpan[0] != Relay.RelaySplices.Paired)
            {
                throw new IOException($"relay {relay.Name} closed the splice connection: the ticket was refused or the other node never came");
            }

            input.AdvanceTo(result.Buffer.GetPosition(1));
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The offered link, from the ticket to the end of its session, as its TLS server; never throws.</summary>
    private async Task AcceptAsync(NodeConfig node, RelayAddress relay, int port, byte[] ticket, string peer)
    {
        var peerMetrics = metrics.Peer(peer);
        ConnectionContext connection;
        try
        {
            connection = await PresentAsync(relay, port, ticket, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            peerMetrics.LinkFailed();
            LogAcceptFailed(logger, peer, relay.Name, ex.Message);
            return;
        }

        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        var verdict = new PeerVerdict();
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(HandshakeTimeout);
            await ssl.AuthenticateAsServerAsync(Credentials(node).ServerOptions(NodeCredentials.LinkProtocol, verdict, node.Refuses), deadline.Token).ConfigureAwait(false);
            if (verdict.Name != peer)
            {
                // The ticket was the asker's to give, but the certificate must be its too.
                throw new IOException($"the certificate is {verdict.Name}'s, not {peer}'s");
            }

            NodeLinkListener.LogCipherSuite(logger, peer, ssl.NegotiatedCipherSuite);
        }
        catch (Exception ex)
        {
            metrics.LinkRefused(verdict.Refusal ?? LinkRefusal.Certificate);
            LogAcceptFailed(logger, peer, relay.Name, verdict.Reason ?? ex.Message);
            await ssl.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        await using var link = new TlsConnection(connection, ssl, carrier, LinkDialer.CloseTimeout);
        var session = new YamuxSession(link, isClient: false, LinkDialer.Options(node.KeepAlive, pool));
        peerMetrics.LinkUp();
        LogLinked(logger, peer, relay.Name);
        session.Start();
        try
        {
            while (await session.AcceptStreamAsync(_stopping.Token).ConfigureAwait(false) is { } stream)
            {
                _ = serve(stream, peer, _stopping.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
        finally
        {
            peerMetrics.LinkDown();

            // The session's teardown decides whether its output was cut: only once it is disposed is that known.
            await session.DisposeAsync().ConfigureAwait(false);
            if (session.OutputCut)
            {
                NodeLinks.LogOutputCut(logger, peer, LinkPath.RelaySpliced, session.Options.CloseTimeout);
            }

            LogUnlinked(logger, peer, relay.Name, LinkDialer.EndReason(session));
        }
    }

    private NodeCredentials Credentials(NodeConfig node)
    {
        lock (_lock)
        {
            return _credentials ??= new NodeCredentials(node, logger);
        }
    }

    [LoggerMessage(EventId = 761, Level = LogLevel.Information, Message = "Node {Peer} linked through relay {Relay} (relay-spliced)")]
    private static partial void LogLinked(ILogger logger, string peer, string relay);

    [LoggerMessage(EventId = 762, Level = LogLevel.Information, Message = "Link from node {Peer} through relay {Relay} (relay-spliced) ended ({Reason})")]
    private static partial void LogUnlinked(ILogger logger, string peer, string relay, string reason);

    [LoggerMessage(EventId = 763, Level = LogLevel.Warning, Message = "Relay {Relay} offered a spliced link from node {Peer}: {Reason}; refused, it takes the terminating relay")]
    private static partial void LogOfferRefused(ILogger logger, string relay, string peer, string reason);

    [LoggerMessage(EventId = 764, Level = LogLevel.Warning, Message = "Spliced link from node {Peer} through relay {Relay} failed: {Reason}")]
    private static partial void LogAcceptFailed(ILogger logger, string peer, string relay, string reason);
}
