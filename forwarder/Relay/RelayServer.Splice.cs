using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp.Splicing;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// Spliced links (<c>relay.mode: splice</c>): a node asks over its own authenticated session for
/// a rendezvous with another registered node; the far node is offered its ticket over its
/// session and answers whether it takes it; the asker then gets its own. Both connect to the
/// splice port (<see cref="RelaySplices"/>), where the relay joins the two connections and the
/// nodes run their own TLS link over them. Any refusal here sends the asker to the terminating
/// relay (<see cref="TunnelRequestKind.Relay"/> streams), which always remains.
/// </content>
internal sealed partial class RelayServer
{
    private RelaySplices? _splices;

    /// <summary>Where nodes present their splice tickets; null when the relay only terminates.</summary>
    public IPEndPoint? SpliceEndPoint => _splices?.EndPoint;

    private void StartSplicing()
    {
        if (config.Splice.Mode != RelayMode.Splice)
        {
            return;
        }

        if (!SocketSplicer.IsSupported)
        {
            // splice is the default: a relay on a system without epoll still starts, and terminates.
            LogSpliceUnsupported(logger, config.Name);
            return;
        }

        var endPoint = new IPEndPoint(config.ListenEndPoint.Address, config.Splice.Port);
        try
        {
            _splices = new RelaySplices(endPoint, config.Splice, registry, time, logger);
            LogSplicing(logger, config.Name, _splices.EndPoint);
        }
        catch (SocketException ex)
        {
            // The relay still terminates: nodes asking for a splice are told no and use that.
            LogNoSplicing(logger, endPoint, ex.SocketErrorCode);
        }
    }

    private async ValueTask StopSplicingAsync()
    {
        if (_splices is { } splices)
        {
            await splices.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Answers a <see cref="TunnelRequestKind.Splice"/> with the asker's ticket, or a status saying why not.</summary>
    private async Task OfferSpliceAsync(RelayNode source, YamuxStream stream, TunnelRequest request)
    {
        if (_splices is not { } splices)
        {
            await AnswerAsync(stream, TunnelStatus.NotAllowed).ConfigureAwait(false);
            return;
        }

        if (request.Node == source.Name || registry.Registered(request.Node) is not { Session: { } far } destination)
        {
            await AnswerAsync(stream, TunnelStatus.UnknownNode).ConfigureAwait(false);
            return;
        }

        if (source.Budget is not null || destination.Budget is not null)
        {
            // The splicer copies at the sockets' pace: a node held to a bandwidth limit gets the
            // terminating relay, which keeps it.
            await AnswerAsync(stream, TunnelStatus.NotAllowed).ConfigureAwait(false);
            return;
        }

        if (!source.TryOpenStream())
        {
            source.StreamRefused();
            await AnswerAsync(stream, TunnelStatus.Limited).ConfigureAwait(false);
            return;
        }

        var rendezvous = splices.Issue(source, destination);
        var port = splices.EndPoint.Port;
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(FarAnswerTimeout);
            var (farStream, status) = await TunnelHandshake.RequestAsync(far, new TunnelRequest(TunnelRequestKind.Spliced, source.Name, $"{port}/{rendezvous.FarTicket}"), deadline.Token).ConfigureAwait(false);
            if (farStream is null)
            {
                splices.Cancel(rendezvous);
                await AnswerAsync(stream, status ?? TunnelStatus.Unreachable).ConfigureAwait(false);
                return;
            }

            await farStream.DisposeAsync().ConfigureAwait(false);
            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
            TunnelHandshake.WriteField(stream.Transport.Output, $"{port}/{rendezvous.AskerTicket}");
            await stream.Transport.Output.FlushAsync(deadline.Token).ConfigureAwait(false);
        }
        catch
        {
            // The asker never learns its ticket: the far half, should it come, waits out the lifetime.
            splices.Cancel(rendezvous);
            throw;
        }
    }

    [LoggerMessage(EventId = 834, Level = LogLevel.Information, Message = "Relay {Relay} splicing links on {EndPoint}")]
    private static partial void LogSplicing(ILogger logger, string relay, EndPoint endPoint);

    [LoggerMessage(EventId = 838, Level = LogLevel.Warning, Message = "Relay {Relay} cannot splice on this system (the splicer needs Linux's epoll): it only terminates (set relay.mode: terminate to say so)")]
    private static partial void LogSpliceUnsupported(ILogger logger, string relay);

    [LoggerMessage(EventId = 835, Level = LogLevel.Warning, Message = "Relay cannot take the splice port {EndPoint} ({Error}): it only terminates (relay.splicePort names another)")]
    private static partial void LogNoSplicing(ILogger logger, EndPoint endPoint, SocketError error);
}
