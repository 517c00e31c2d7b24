using System.Net.Sockets;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// A non-blocking connect whose completion the splicer thread watches (EPOLLOUT). Connecting
/// this way keeps the socket out of .NET's own epoll set: a socket registered there by
/// ConnectAsync would wake .NET's engine thread on every later event too, for nothing.
/// </summary>
internal sealed class PendingConnect(Socket socket) : EpollTarget
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _ended;

    public Task Completion => _completion.Task;

    public override bool Watch(ulong data)
    {
        if (EpollAdd(Thread.Epoll, (int)socket.SafeHandle.DangerousGetHandle(), EpollOut, data) < 0)
        {
            // ENOMEM or ENOSPC (max_user_watches): this node is out of resources, the endpoint is
            // not at fault, and the caller must be able to tell (SocketException(int) takes a
            // SocketError, not an errno).
            Cancel(new SocketException((int)SocketError.NoBufferSpaceAvailable));
            return false;
        }

        return true;
    }

    public override void OnEvent(bool secondSide, uint events, List<SpliceFlow> ready)
    {
        if (End())
        {
            var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
            if (error == SocketError.Success)
            {
                _completion.TrySetResult();
            }
            else
            {
                _completion.TrySetException(new SocketException((int)error));
            }
        }
    }

    public override void Cancel(Exception reason)
    {
        if (End())
        {
            _completion.TrySetException(reason);
        }
    }

    private bool End()
    {
        if (_ended)
        {
            return false;
        }

        _ended = true;
        EpollDelete(Thread.Epoll, (int)socket.SafeHandle.DangerousGetHandle());
        Thread.Ended(this);
        return true;
    }
}
