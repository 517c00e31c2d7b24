using Microsoft.AspNetCore.Connections;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <content>Receiving, on the splicer thread: each edge read until the socket is drained, paused while the reader is behind.</content>
public sealed partial class EpollConnection
{
    /// <summary>Runs on the thread: reads until the socket is drained, passing each read to the reader inline.</summary>
    private unsafe void Receive()
    {
        while (!_receiveEnded)
        {
            if (_receivePaused)
            {
                _readable = true;
                return;
            }

            var memory = _input.GetReceiveMemory(_minimumReceiveSize);
            nint received;
            fixed (byte* buffer = memory.Span)
            {
                do
                {
                    received = LinuxSockets.Receive(_fd, buffer, memory.Length, 0);
                }
                while (received < 0 && Errno == EIntr);
            }

            if (received < 0)
            {
                var errno = Errno;
                _readable = false;
                if (errno == EAgain)
                {
                    _input.Commit(0);
                }
                else
                {
                    EndReceive(new ConnectionResetException($"recv failed: errno {errno}"));
                }

                return;
            }

            if (received == 0)
            {
                // A FIN, or our own shutdown: that must not read as the peer's orderly close.
                EndReceive(_abortReason);
                return;
            }

            var committed = _input.Commit((int)received);
            if (committed == ReceiveReader.CommitResult.ReaderCompleted)
            {
                EndReceive(null);
                return;
            }

            if (committed == ReceiveReader.CommitResult.Pause)
            {
                // The reader is behind: stop reading until it catches up (backpressure).
                _receivePaused = true;
                _readable = received == memory.Length || _hungUp;
                return;
            }

            // Edge-triggered: a short read means drained, and new data raises a new edge. After a
            // hang-up no edge comes again, so read on to the end.
            if (received < memory.Length && !_hungUp)
            {
                _readable = false;
                return;
            }
        }
    }

    private void ScheduleResume() => _thread.Schedule(_target);

    /// <summary>Runs on the thread once the reader caught up with a paused receive (or was completed).</summary>
    private void ResumeReceive()
    {
        if (!_receivePaused)
        {
            return;
        }

        _receivePaused = false;
        if (_readable)
        {
            Receive();
        }
    }

    private void EndReceive(Exception? error)
    {
        if (_receiveEnded)
        {
            return;
        }

        _receiveEnded = true;
        _input.CompleteWriter(error);
    }
}
