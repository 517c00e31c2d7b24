using System.Buffers;
using Forwarder.Transports.Mux;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Relay;

/// <summary>
/// Copies one direction of a relayed stream, paced by the sending node's bandwidth budget: a
/// FIN is passed on as a FIN, a failure resets both streams.
/// </summary>
internal static class RelayPump
{
    public static async Task RunAsync(YamuxStream from, YamuxStream to, RelayNode sender, RelayNode receiver)
    {
        var input = from.Transport.Input;
        var output = to.Transport.Output;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    if (sender.Budget?.Take(buffer.Length) is { Ticks: > 0 } wait)
                    {
                        sender.AddThrottled(wait);
                        await Task.Delay(wait).ConfigureAwait(false);
                    }

                    // Framed straight from the one stream's input into the other's session: no copy between the streams' pipes.
                    await to.SendAsync(buffer).ConfigureAwait(false);
                    sender.AddFrom(buffer.Length);
                    receiver.AddTo(buffer.Length);
                }

                input.AdvanceTo(buffer.End);

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException or IOException or InvalidOperationException or OperationCanceledException)
        {
            to.Abort(new ConnectionAbortedException("The other side of the relayed stream failed.", ex));
            from.Abort(new ConnectionAbortedException("The relayed stream failed.", ex));
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
    }
}
