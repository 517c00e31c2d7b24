using Microsoft.AspNetCore.Connections;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <content>Sending, from whichever thread flushes: plain send(2) calls, and a watch for writability only when the socket's buffer is full.</content>
public sealed partial class EpollConnection
{
    /// <summary>The output was completed: send what is left, then a FIN (or, completed with an error, abort).</summary>
    internal void OutputCompleted(Exception? error)
    {
        if (error is not null)
        {
            _output.Release();
            Close(error, reset: false);
            return;
        }

        _sending = FinishSendingAsync();
    }

    private async Task FinishSendingAsync()
    {
        try
        {
            if (await _output.DrainAsync().ConfigureAwait(false) && Volatile.Read(ref _closed) == 0)
            {
                LinuxSockets.Shutdown(_fd, ShutWr);
            }
        }
        finally
        {
            _output.Release();
        }
    }

    /// <summary>A send failed: a reset is passed on as a reset, anything else closes the connection.</summary>
    internal void SendFailed(Exception reason) => Close(reason, reset: reason is ConnectionResetException);

    /// <summary>Bytes sent, or -1 when the socket's buffer is full; throws when the connection failed.</summary>
    internal unsafe int SendSome(ReadOnlySpan<byte> bytes)
    {
        while (true)
        {
            nint sent;
            fixed (byte* buffer = bytes)
            {
                sent = Send(_fd, buffer, bytes.Length, MsgNoSignal);
            }

            if (sent >= 0)
            {
                return (int)sent;
            }

            var errno = Errno;
            if (errno == EAgain)
            {
                return -1;
            }

            if (errno != EIntr)
            {
                throw _abortReason is { } reason
                    ? new ConnectionAbortedException("The connection was closed.", reason)
                    : new ConnectionResetException($"send failed: errno {errno}");
            }
        }
    }

    /// <summary>Watches for writability until the thread sees it; callable from any thread.</summary>
    internal Task WaitWritableAsync()
    {
        var writable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_watchLock)
        {
            _writable = writable;
            if (_target.Watching && EpollModify(_thread.Epoll, _fd, ReadInterest | EpollOut, _target.Data) < 0)
            {
                _writable = null;
                throw new ConnectionResetException($"epoll_ctl failed: errno {Errno}");
            }
        }

        return writable.Task;
    }
}
