using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Mux;

/// <summary>Keep-alive: a ping after every quiet interval, and a session that gets no answer ends as dead.</summary>
public sealed partial class YamuxSession
{
    private async Task KeepAliveAsync()
    {
        using var timer = new PeriodicTimer(Options.KeepAliveInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token).ConfigureAwait(false))
            {
                if (Environment.TickCount64 - Volatile.Read(ref _lastInbound) < Options.KeepAliveInterval.TotalMilliseconds)
                {
                    // Traffic came in since the last tick: the peer is alive.
                    continue;
                }

                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
                deadline.CancelAfter(Options.PingTimeout);
                try
                {
                    await PingAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!_closing.IsCancellationRequested)
                {
                    // No answer: the peer or the path is dead.
                    _connection.Abort(new ConnectionAbortedException("The yamux peer did not answer a keep-alive ping."));
                    Close(new TimeoutException("keep-alive ping unanswered"));
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or YamuxSessionClosedException)
        {
            // The session ended.
        }
    }
}
