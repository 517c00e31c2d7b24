using System.Buffers;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Diagnostics;
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
    ConnectionTracker tracker) : ISpliceObserver, IThreadPoolWorkItem
{
    // Not the primary constructor's capture: a splice lets go of it (the session is the splice's
    // observer, so it lives as long as the pair).
    private ConnectionContext? _upstream = upstream;
    private SplicedConnection _spliced;
    private UpstreamEndpoint? _endpoint;
    private IConnectionEnd? _end;

    /// <summary>
    /// Hands both connections to the splicer when both are plain sockets. The upstream's socket
    /// is taken first (the connection is fresh and ours alone), and once it is, the caller
    /// disposes the upstream connection, which then frees only its own resources. When spliced,
    /// the session ends the connection as the splice ends: the endpoint's and the service's
    /// counts, then <paramref name="end"/>; the caller then calls <see cref="AttachSplice"/>.
    /// </summary>
    public SpliceStart TrySplice(SocketSplicer splicer, UpstreamEndpoint endpoint, IConnectionEnd end)
    {
        if (client.Client.Features.Get<IRawSocketFeature>() is not { CanTakeSocket: true } clientSocket
            || _upstream!.Features.Get<IRawSocketFeature>() is not { } upstreamSocket
            || !upstreamSocket.TryTakeSocket(out var upstreamRaw))
        {
            return SpliceStart.NotSpliceable;
        }

        _upstream = null;

        // Fails only if the client was aborted meanwhile, and then there is nothing to serve.
        if (!clientSocket.TryTakeSocket(out var clientRaw))
        {
            upstreamRaw.Dispose();
            return SpliceStart.ClientGone;
        }

        // Set before the splice starts: it may end before Splice returns.
        _endpoint = endpoint;
        _end = end;
        _spliced = splicer.Splice(clientRaw, upstreamRaw, this);
        return SpliceStart.Spliced;
    }

    /// <summary>
    /// After <see cref="TrySplice"/> returned <see cref="SpliceStart.Spliced"/> (and the caller
    /// noted it): aborting the client aborts the splice. Apart, so that whatever this throws,
    /// the caller knows the splice's end does the counts' and does not do them a second time.
    /// </summary>
    public void AttachSplice() => client.AttachUpstream(AbortSplice);

    /// <summary>Pumps the bytes each side reads to the other's pipe until both directions are done.</summary>
    public Task RunAsync(bool directSend)
    {
        var upstream = _upstream!;
        client.AttachUpstream(reason => upstream.Abort(new ConnectionAbortedException(reason)));
        var toUpstream = PumpAsync(client.Client, upstream, toUpstream: true, directSend);
        var toClient = PumpAsync(upstream, client.Client, toUpstream: false, directSend);
        return Task.WhenAll(toUpstream, toClient);
    }

    /// <summary>A method group, not a lambda: the delegate then needs no closure beside the session.</summary>
    private void AbortSplice(string _) => _spliced.Abort();

    /// <summary>On the splicer's thread, which must not wait on the listener's bookkeeping: it runs on the pool.</summary>
    void ISpliceObserver.Ended(SpliceOutcome outcome) => ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);

    void IThreadPoolWorkItem.Execute()
    {
        _endpoint!.State.End();
        serviceMetrics.UpstreamClosed();
        _end!.End(client, listenerMetrics);
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
                    // DelayInjection builds only: the link arm's stand-in for a slower relay (as SpliceFlow's for the tcp listener).
                    InjectedDelay.Apply();
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

/// <summary>What <see cref="TcpProxySession.TrySplice"/> did.</summary>
internal enum SpliceStart
{
    /// <summary>Not both plain sockets: nothing was taken, the session pumps.</summary>
    NotSpliceable,

    /// <summary>The splicer has both connections; the session ends the connection when the splice ends.</summary>
    Spliced,

    /// <summary>The client was aborted before its socket could be taken: the upstream's was closed, nothing is left to serve.</summary>
    ClientGone,
}
