using System.Net.Sockets;
using Forwarder.L4;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// This node's side of a tunnel stream, whether it came over a direct link or through a relay:
/// the stream names a target, which must be an endpoint this node hosts by the running config
/// (never anything else: a tunnel is not an open proxy); it is connected to over TCP, the
/// outcome is answered, and on success the stream is spliced to it.
/// </summary>
internal sealed partial class HostedEndpointServer(
    ConfigSource source,
    TcpConnectionFactory tcp,
    ProxyRuntime runtime,
    ConnectionTracker tracker,
    ForwarderMetrics metrics,
    ILogger<HostedEndpointServer> logger)
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Serves one stream to its end; never throws.</summary>
    /// <param name="linkedPeer">The node at the other end of a direct link; null for a stream from a relay, which names the node it comes from.</param>
    public async Task ServeAsync(YamuxStream stream, string? linkedPeer, CancellationToken stopping)
    {
        await using (stream)
        {
            PeerMetrics? peerMetrics = null;
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                deadline.CancelAfter(RequestTimeout);
                var expected = linkedPeer is null ? TunnelRequestKind.Relayed : TunnelRequestKind.Connect;
                if (await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, deadline.Token).ConfigureAwait(false) is not { } request
                    || request.Kind != expected)
                {
                    return;
                }

                var peer = linkedPeer ?? request.Node;
                peerMetrics = metrics.Peer(peer);
                peerMetrics.StreamOpened(outbound: false, relayed: linkedPeer is null);
                if (HostedEndpoint(request.Target) is not var (service, endpoint))
                {
                    LogNotAllowed(logger, peer, request.Target);
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

    private async Task SpliceAsync(YamuxStream stream, ConnectionContext upstream, ServiceModel service)
    {
        var listenerMetrics = metrics.Listener(NodeLinkListener.MetricsName);
        listenerMetrics.ConnectionOpened();
        service.Metrics.UpstreamOpened();
        var client = new ClientConnection(stream, tracker.Now) { IdleTimeout = service.Config.IdleTimeout };
        tracker.Add(client);
        try
        {
            await new TcpProxySession(client, upstream, listenerMetrics, service.Metrics, tracker).RunAsync(splicer: null, directSend: false).ConfigureAwait(false);
        }
        finally
        {
            tracker.Remove(client);
            service.Metrics.UpstreamClosed();
            listenerMetrics.ConnectionClosed();
        }
    }

    /// <summary>The service and endpoint <paramref name="target"/> names, if the running config has this node host it.</summary>
    private (ServiceModel Service, UpstreamEndpoint Endpoint)? HostedEndpoint(string target)
    {
        var self = source.Initial.Node!.Name;
        foreach (var service in runtime.Services.Values)
        {
            foreach (var endpoint in service.Endpoints)
            {
                if (endpoint.Config.Address == target && endpoint.Config.Node == self)
                {
                    return (service, endpoint);
                }
            }
        }

        return null;
    }

    private static async ValueTask AnswerAsync(YamuxStream stream, TunnelStatus status)
    {
        TunnelHandshake.WriteStatus(stream.Transport.Output, status);
        await stream.Transport.Output.FlushAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 714, Level = LogLevel.Warning, Message = "Node {Peer} asked for {Target}, which is not an endpoint this node hosts; refused")]
    private static partial void LogNotAllowed(ILogger logger, string peer, string target);
}
