using System.Buffers;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L4;

/// <summary>
/// Splices one client connection to one upstream connection: a pump per direction, each passing
/// the bytes it reads straight to the other side. A FIN in one direction half-closes only that
/// direction; a reset on either side resets both.
/// </summary>
internal sealed class TcpProxySession(
    ClientConnection client,
    ConnectionContext upstream,
    ListenerMetrics listenerMetrics,
    ServiceMetrics serviceMetrics,
    ConnectionTracker tracker,
    bool directSend)
{
    public Task RunAsync()
    {
        var toUpstream = PumpAsync(client.Client, upstream, toUpstream: true);
        var toClient = PumpAsync(upstream, client.Client, toUpstream: false);
        return Task.WhenAll(toUpstream, toClient);
    }

    private async Task PumpAsync(ConnectionContext source, ConnectionContext target, bool toUpstream)
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
