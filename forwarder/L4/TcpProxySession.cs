using System.Buffers;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Features;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L4;

/// <summary>
/// Joins one client connection to one upstream connection. When both are plain sockets they are
/// handed to the epoll splicer; otherwise a pump per direction passes the bytes each reads to the
/// other side's pipe. Either way a FIN in one direction half-closes only that direction, and a
/// reset on either side resets both.
/// </summary>
internal sealed class TcpProxySession(
    ClientConnection client,
    ConnectionContext upstream,
    ListenerMetrics listenerMetrics,
    ServiceMetrics serviceMetrics,
    ConnectionTracker tracker) : ISpliceObserver
{
    public Task RunAsync(SocketSplicer? splicer, bool directSend)
    {
        // The upstream connection is fresh and ours alone, so it is taken first; the client's
        // take fails only if it was aborted meanwhile, and then there is nothing left to serve.
        if (splicer is not null
            && client.Client.Features.Get<IRawSocketFeature>() is { CanTakeSocket: true } clientSocket
            && upstream.Features.Get<IRawSocketFeature>() is { } upstreamSocket
            && upstreamSocket.TryTakeSocket(out var upstreamRaw))
        {
            if (!clientSocket.TryTakeSocket(out var clientRaw))
            {
                upstreamRaw.Dispose();
                return Task.CompletedTask;
            }

            return Splice(splicer, clientRaw, upstreamRaw);
        }

        client.AttachUpstream(reason => upstream.Abort(new ConnectionAbortedException(reason)));
        var toUpstream = PumpAsync(client.Client, upstream, toUpstream: true, directSend);
        var toClient = PumpAsync(upstream, client.Client, toUpstream: false, directSend);
        return Task.WhenAll(toUpstream, toClient);
    }

    /// <summary>
    /// The splice closes both sockets as it ends: its completion is all there is to wait for. A
    /// method of its own, so the abort's closure holds only the splice.
    /// </summary>
    private Task Splice(SocketSplicer splicer, Socket clientSocket, Socket upstreamSocket)
    {
        var spliced = splicer.Splice(clientSocket, upstreamSocket, this);
        client.AttachUpstream(_ => spliced.Abort());
        return spliced.Completion;
    }

    void ISpliceObserver.Forwarded(bool toUpstream, int bytes) => Count(bytes, toUpstream);

    private async Task PumpAsync(ConnectionContext source, ConnectionContext target, bool toUpstream, bool directSend)
    {
        var input = source.Transport.Input;
        var output = target.Transport.Output;
        var direct = directSend ? target.Features.Get<IDirectSendFeature>() : null;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    if (direct is not null)
                    {
                        await direct.SendAsync(buffer).ConfigureAwait(false);
                    }
                    else
                    {
                        foreach (var segment in buffer)
                        {
                            output.Write(segment.Span);
                        }

                        var flush = await output.FlushAsync().ConfigureAwait(false);
                        if (flush.IsCompleted)
                        {
                            input.AdvanceTo(buffer.End);
                            break;
                        }
                    }

                    Count(buffer.Length, toUpstream);
                }

                input.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            // The source sent its FIN: pass it on and leave the other direction flowing.
            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (ConnectionResetException)
        {
            Reset(target);
            Reset(source);
        }
        catch (Exception ex) when (ex is ConnectionAbortedException or IOException or InvalidOperationException or OperationCanceledException)
        {
            target.Abort(new ConnectionAbortedException("The other side of the proxied connection failed.", ex));
            source.Abort(new ConnectionAbortedException("The proxied connection failed.", ex));
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
    }

    private void Count(long bytes, bool toUpstream)
    {
        client.Touch(tracker.Now);
        if (toUpstream)
        {
            listenerMetrics.AddReceived(bytes);
            serviceMetrics.AddToUpstream(bytes);
        }
        else
        {
            listenerMetrics.AddSent(bytes);
            serviceMetrics.AddFromUpstream(bytes);
        }
    }

    private static void Reset(ConnectionContext connection)
    {
        if (connection.Features.Get<IConnectionResetFeature>() is { } reset)
        {
            reset.Reset();
        }
        else
        {
            connection.Abort(new ConnectionAbortedException("The other side of the proxied connection was reset."));
        }
    }
}
