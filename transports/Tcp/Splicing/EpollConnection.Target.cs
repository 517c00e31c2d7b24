using Microsoft.AspNetCore.Connections;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <content>The connection as its splicer thread sees it: epoll events, scheduled resumes, and the end of the watch.</content>
public sealed partial class EpollConnection
{
    /// <summary>Runs on the thread: an epoll event for this socket.</summary>
    private void OnEvent(uint events)
    {
        if ((events & (EpollOut | EpollErr | EpollHup)) != 0)
        {
            TaskCompletionSource? writable;
            lock (_watchLock)
            {
                writable = _writable;
                _writable = null;
                if (writable is not null)
                {
                    EpollModify(_thread.Epoll, _fd, ReadInterest, _target.Data);
                }
            }

            writable?.TrySetResult();
        }

        if ((events & (EpollIn | EpollRdHup | EpollHup | EpollErr)) != 0)
        {
            _hungUp |= (events & (EpollRdHup | EpollHup | EpollErr)) != 0;
            Receive();
        }
    }

    /// <summary>The connection as its splicer thread sees it.</summary>
    private sealed class Target(EpollConnection connection) : EpollTarget
    {
        private bool _ended;

        /// <summary>Added to the epoll set and not yet removed (read under the watch lock by senders).</summary>
        public bool Watching { get; private set; }

        public ulong Data { get; private set; }

        public override bool Watch(ulong data)
        {
            lock (connection._watchLock)
            {
                Data = data;
                var interest = connection._writable is null ? ReadInterest : ReadInterest | EpollOut;
                if (EpollAdd(Thread.Epoll, connection._fd, interest, data) < 0)
                {
                    var error = new ConnectionResetException($"epoll_ctl failed: errno {Errno}");
                    End();
                    connection.EndReceive(error);
                    return false;
                }

                Watching = true;
            }

            return true;
        }

        public override void OnEvent(bool secondSide, uint events, List<SpliceFlow> ready)
        {
            if (!_ended)
            {
                connection.OnEvent(events);
            }
        }

        public override void OnScheduled()
        {
            if (!_ended)
            {
                connection.ResumeReceive();
            }
        }

        public override void Cancel(Exception reason)
        {
            if (!_ended)
            {
                End();
                connection.EndReceive(reason is ConnectionAbortedException ? null : reason);
            }
        }

        private void End()
        {
            _ended = true;
            TaskCompletionSource? writable;
            lock (connection._watchLock)
            {
                if (Watching)
                {
                    EpollDelete(Thread.Epoll, connection._fd);
                    Watching = false;
                }

                writable = connection._writable;
                connection._writable = null;
            }

            writable?.TrySetException(new ConnectionAbortedException("The connection was closed."));
            if (connection._referenced)
            {
                connection._referenced = false;
                connection._socket.SafeHandle.DangerousRelease();
            }

            Thread.Ended(this);
            connection._unwatched.TrySetResult();
        }
    }
}
