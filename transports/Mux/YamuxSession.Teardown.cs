using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Mux;

/// <summary>
/// The end of a session: what is still queued goes out while the peer reads it, for at most
/// <see cref="YamuxOptions.CloseTimeout"/>; then the connection is aborted.
/// </summary>
public sealed partial class YamuxSession
{
    /// <summary>
    /// True when the session's last frames were dropped: the peer did not take the rest within
    /// <see cref="YamuxOptions.CloseTimeout"/> after the session ended, and the connection was aborted.
    /// </summary>
    public bool OutputCut { get; private set; }

    /// <summary>
    /// A peer that half-closed and stopped reading would otherwise hold the connection, and the
    /// megabytes queued for it, for as long as it lives: the graceful part has a deadline.
    /// </summary>
    private async Task TearDownAsync()
    {
        var completing = CompleteOutputAsync();
        try
        {
            await completing.WaitAsync(Options.CloseTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            OutputCut = true;
            _connection.Abort(new ConnectionAbortedException($"The yamux peer did not take the rest within {Options.CloseTimeout.TotalSeconds:0.###} s after the session ended."));

            // The abort fails the flush in flight, and with it the rest.
            await completing.ConfigureAwait(false);
        }
    }

    /// <summary>Once the session has ended: writes what is still queued (a go-away), then completes the connection's output.</summary>
    private async Task CompleteOutputAsync()
    {
        var output = _connection.Transport.Output;
        int state;
        while ((state = Interlocked.CompareExchange(ref _writer, WriterOwned, WriterFree)) == WriterOwned)
        {
            // Another thread is writing: its batch ends soon, or its flush completes.
            await _flushing.ConfigureAwait(false);
            await Task.Yield();
        }

        try
        {
            while (state == WriterFree && !NothingQueued)
            {
                if ((await WriteQueued().ConfigureAwait(false)).IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            // The connection is gone: nothing more can be sent.
        }

        Volatile.Write(ref _writer, WriterDone);
        while (_data.TryDequeue(out var left))
        {
            if (left.Payload is { } payload)
            {
                ArrayPool<byte>.Shared.Return(payload);
            }
        }

        try
        {
            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
            // Completing flushes what is left; with the connection gone there is nowhere to flush it.
        }
    }
}
