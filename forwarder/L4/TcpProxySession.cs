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
    // Not the primary constructor's capture: a splice lets go of it (the session is the splice's
    // observer, so it lives as long as the pair).
    private ConnectionContext? _upstream = upstream;
    private SplicedConnection _spliced;

    /// <param name="disposeUpstream">
    /// The session disposes the upstream connection as it ends, or at once when the splicer took
    /// its socket: an idle spliced pair then keeps only the sockets, not the connection around them.
    /// </param>
    public Task RunAsync(SocketSplicer? splicer, bool directSend, bool disposeUpstream = false)
    {
        var upstream = _upstream!;

        // The upstream connection is fresh and ours alone, so it is taken first.
        if (splicer is not null
            && client.Client.Features.Get<IRawSocketFeature>() is { CanTakeSocket: true } clientSocket
            && upstream.Features.Get<IRawSocketFeature>() is { } upstreamSocket
            && upstreamSocket.TryTakeSocket(out var upstreamRaw))
        {
            Task spliced;
            Task? disposing = null;
            try
            {
                spliced = Splice(splicer, clientSocket, upstreamRaw);
            }
            finally
            {
                if (disposeUpstream)
                {
                    _upstream = null;
                    disposing = DisposeTaken(upstream);
                }
            }

            return disposing is null ? spliced : Task.WhenAll(disposing, spliced);
        }

        client.AttachUpstream(reason => upstream.Abort(new ConnectionAbortedException(reason)));
        var toUpstream = PumpAsync(client.Client, upstream, toUpstream: true, directSend);
        var toClient = PumpAsync(upstream, client.Client, toUpstream: false, directSend);
        var pumped = Task.WhenAll(toUpstream, toClient);
        return disposeUpstream ? DisposeAfterAsync(pumped, upstream) : pumped;
    }

    /// <summary>
    /// The splice closes both sockets as it ends: its completion is all there is to wait for. The
    /// client's take fails only if it was aborted meanwhile, and then there is nothing to serve.
    /// </summary>
    private Task Splice(SocketSplicer splicer, IRawSocketFeature clientSocket, Socket upstreamSocket)
    {
        if (!clientSocket.TryTakeSocket(out var clientRaw))
        {
            upstreamSocket.Dispose();
            return Task.CompletedTask;
        }

        _spliced = splicer.Splice(clientRaw, upstreamSocket, this);
        client.AttachUpstream(AbortSplice);
        return _spliced.Completion;
    }

    /// <summary>A method group, not a lambda: the delegate then needs no closure beside the session.</summary>
    private void AbortSplice(string _) => _spliced.Abort();

    /// <summary>
    /// A connection whose socket was taken only frees its own resources, at once; null when it has
    /// (the usual case), else the task to observe.
    /// </summary>
    private static Task? DisposeTaken(ConnectionContext upstream)
    {
        var disposed = upstream.DisposeAsync();
        if (!disposed.IsCompletedSuccessfully)
        {
            return disposed.AsTask();
        }

        disposed.GetAwaiter().GetResult();
        return null;
    }

    private static async Task DisposeAfterAsync(Task pumped, ConnectionContext upstream)
    {
        try
        {
            await pumped.ConfigureAwait(false);
        }
        finally
        {
            await upstream.DisposeAsync().ConfigureAwait(false);
        }
    }

    void ISpliceObserver.Forwarded(bool toUpstream, int bytes) => Count(bytes, toUpstream);

    private async Task PumpAsync(ConnectionContext source, ConnectionContext target, bool toUpstream, bool directSend)
    {
        var input = source.Transport.Input;
        var output = target.Transport.Output;
        var direct = directSend ? target.Features.Get<IDirectSendFeature>() : null;
        if (direct is { ChunkSize: > 0 and var chunk } && source.Features.Get<IReceiveLimitFeature>() is { } limit)
        {
            // Reads the size of the sender's frames are framed whole, with no small remainder.
            limit.MaxReceiveSize = chunk;
        }

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
