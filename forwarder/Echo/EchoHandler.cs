using System.Buffers;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Echo;

/// <summary>
/// The built-in echo backend: writes back every byte it reads and answers a FIN with a FIN.
/// Lets the quick start and benchmarks run with nothing else installed.
/// </summary>
internal sealed class EchoHandler(ConnectionTracker tracker)
{
    public async Task HandleAsync(ClientConnection client, ListenerMetrics metrics)
    {
        var connection = client.Client;
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    output.Write(segment.Span);
                }

                metrics.AddReceived(buffer.Length);
                metrics.AddSent(buffer.Length);
                client.Touch(tracker.Now);
                var flush = await output.FlushAsync().ConfigureAwait(false);
                input.AdvanceTo(buffer.End);
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException or IOException)
        {
            // The client went away; nothing to answer.
        }
    }
}
