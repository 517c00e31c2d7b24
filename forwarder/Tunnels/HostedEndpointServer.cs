using Forwarder.Configuration;
using System.Net.Sockets;
using Forwarder.L4;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// This node's side of a tunnel stream, whether it came over a direct link or through a relay:
/// the stream names a target, which must be an endpoint this node hosts of a service the running
/// config exports (never anything else: a tunnel is not an open proxy), asked for by a node this
/// one admits (links are admitted as they open; a relay's streams here); it is connected to over
/// TCP, the outcome is answered, and on success the stream is spliced to it. Refusals are
/// answered NotAllowed, logged and counted.
/// </summary>
internal sealed partial class HostedEndpointServer(
    ConfigSource source,
    TcpConnectionFactory tcp,
    ProxyRuntime runtime,
    ConnectionTracker tracker,
    HolePunching punching,
    TcpPunching tcpPunching,
    SplicedRelayLinks spliced,
    ForwarderMetrics metrics,
    ILogger<HostedEndpointServer> logger)
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Serves one stream to its end; never throws.</summary>
    /// <param name="linkedPeer">The node at the other end of a direct link; null for a stream from a relay, which names the node it comes from.</param>
    /// <param name="path">The way the stream came: the direct link's transport, or <see cref="LinkPath.Relay"/>.</param>
    /// <param name="relay">The relay a stream from a relay came from.</param>
    public async Task ServeAsync(ConnectionContext stream, string? linkedPeer, LinkPath path, CancellationToken stopping, RelayAddress? relay = null)
    {
        await using (stream)
        {
            PeerMetrics? peerMetrics = null;
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                deadline.CancelAfter(RequestTimeout);
                var expected = linkedPeer is null ? TunnelRequestKind.Relayed : TunnelRequestKind.Connect;
                if (await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, deadline.Token).ConfigureAwait(false) is not { } request)
                {
                    return;
                }

                if (relay is not null && request.Kind == TunnelRequestKind.Punched)
                {
                    await punching.AnswerAsync(stream, request, relay, deadline.Token).ConfigureAwait(false);
                    return;
                }

                if (relay is not null && request.Kind == TunnelRequestKind.TcpPunched)
                {
                    await tcpPunching.AnswerAsync(stream, request, relay, deadline.Token).ConfigureAwait(false);
                    return;
                }

                if (relay is not null && request.Kind == TunnelRequestKind.Spliced)
                {
                    await spliced.AnswerAsync(stream, request, relay, deadline.Token).ConfigureAwait(false);
                    return;
                }

                if (request.Kind != expected)
                {
                    return;
                }

                var peer = linkedPeer ?? request.Node;
                peerMetrics = metrics.Peer(peer);
                peerMetrics.StreamOpened(outbound: false, path);
                if (linkedPeer is null && source.Initial.Node!.Refuses(peer) is { } reason)
                {
                    peerMetrics.StreamRefused(StreamRefusal.Unlisted);
                    LogRelayedRefused(logger, peer, request.Target, reason);
                    await AnswerAsync(stream, TunnelStatus.NotAllowed).ConfigureAwait(false);
                    return;
                }

                if (ExportedEndpoint(request.Target, out var hosted) is not var (service, endpoint))
                {
                    peerMetrics.StreamRefused(StreamRefusal.NotExported);
                    if (hosted is null)
                    {
                        LogNotHosted(logger, peer, request.Target);
                    }
                    else
                    {
                        LogNotExported(logger, peer, request.Target, hosted);
                    }

                    await AnswerAsync(stream, TunnelStatus.NotAllowed).ConfigureAwait(false);
                    return;
                }

                ConnectionContext upstream;
                try
                {
                    using var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    connectDeadline.CancelAfter(service.Config.ConnectTimeout);
                    upstream = await tcp.ConnectAsync(endpoint.Config.EndPoint, connectDeadline.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    await AnswerAsync(stream, ex is SocketException socket ? TunnelHandshake.FromSocketError(socket.SocketErrorCode) : TunnelStatus.TimedOut).ConfigureAwait(false);
                    return;
                }

                await using (upstream)
                {
                    await AnswerAsync(stream, TunnelStatus.Connected).ConfigureAwait(false);
                    await SpliceAsync(stream, upstream, service).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
            {
                // The stream or the link broke: its peer sees the reset.
            }
            finally
            {
                peerMetrics?.StreamClosed();
            }
        }
    }

    private async Task SpliceAsync(ConnectionContext stream, ConnectionContext upstream, ServiceModel service)
    {
        var listenerMetrics = metrics.Listener(NodeLinkListener.MetricsName);
        listenerMetrics.ConnectionOpened();
        service.Metrics.UpstreamOpened();
        var client = new ClientConnection(stream, tracker.Now) { IdleTimeout = service.Config.IdleTimeout };
        tracker.Add(client);
        try
        {
            await new TcpProxySession(client, upstream, listenerMetrics, service.Metrics, tracker).RunAsync(runtime.Config.Tcp.DirectSend).ConfigureAwait(false);
        }
        finally
        {
            tracker.Remove(client);
            service.Metrics.UpstreamClosed();
            listenerMetrics.ConnectionClosed();
        }
    }

    /// <summary>
    /// The service and endpoint <paramref name="target"/> names, if the running config has this
    /// node host it for an exported service; else null, with the service that hosts it unexported
    /// in <paramref name="unexported"/>, if one does.
    /// </summary>
    private (ServiceModel Service, UpstreamEndpoint Endpoint)? ExportedEndpoint(string target, out string? unexported)
    {
        unexported = null;
        var self = source.Initial.Node!.Name;

        // The configs, not the models: a service nothing on this node uses has no model, yet the
        // log should say it is not exported rather than not hosted.
        var models = runtime.Services;
        foreach (var service in runtime.Config.Services.Values)
        {
            if (!service.Endpoints.Any(e => e.Address == target && e.Node == self))
            {
                continue;
            }

            // Exported services always have a model; a reload between the two reads may have just dropped it.
            if (service.Export && models.GetValueOrDefault(service.Name) is { } model
                && model.Endpoints.FirstOrDefault(e => e.Config.Address == target && e.Config.Node == self) is { } endpoint)
            {
                return (model, endpoint);
            }

            unexported = service.Name;
        }

        return null;
    }

    private static async ValueTask AnswerAsync(ConnectionContext stream, TunnelStatus status)
    {
        TunnelHandshake.WriteStatus(stream.Transport.Output, status);
        await stream.Transport.Output.FlushAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 714, Level = LogLevel.Warning, Message = "Node {Peer} asked for {Target}, which is not an endpoint this node hosts; refused")]
    private static partial void LogNotHosted(ILogger logger, string peer, string target);

    [LoggerMessage(EventId = 718, Level = LogLevel.Warning, Message = "Node {Peer} asked for {Target}, an endpoint of service {Service}, which is not exported (export: true); refused")]
    private static partial void LogNotExported(ILogger logger, string peer, string target, string service);

    [LoggerMessage(EventId = 719, Level = LogLevel.Warning, Message = "A relay brought a stream from {Peer} for {Target}: {Reason}; refused")]
    private static partial void LogRelayedRefused(ILogger logger, string peer, string target, string reason);
}
