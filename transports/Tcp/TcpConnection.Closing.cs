using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <content>Ending the connection: abort, reset, half-close, dispose; each closes the socket once, and never one that was taken.</content>
public sealed partial class TcpConnection
{
    public override void Abort(ConnectionAbortedException abortReason) => CloseSocket(abortReason, reset: false);

    public void Reset() => CloseSocket(new ConnectionResetException("The connection was reset by the proxy."), reset: true);

    public override async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == SocketTaken)
        {
            DisposeOwnResources();
            return;
        }

        if (_transport is { } transport)
        {
            transport.Output.Complete();
            transport.Input.Complete();
        }

        // The send loop drains what is left and sends a FIN; only then is the socket closed.
        await _sending.ConfigureAwait(false);
        CloseSocket(null, reset: false);
        await _receiving.ConfigureAwait(false);
        DisposeOwnResources();
    }

    private void DisposeOwnResources()
    {
        _sender?.Dispose();
        _closedTokenSource?.Dispose();
    }

    private void ShutdownSend()
    {
        lock (_shutdownLock)
        {
            if (_socketClosed)
            {
                return;
            }

            try
            {
                Socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The peer is already gone; the receive loop reports how.
            }
        }
    }

    private void CloseSocket(Exception? reason, bool reset)
    {
        lock (_shutdownLock)
        {
            // A taken socket belongs to its taker now.
            if (_socketClosed || Volatile.Read(ref _state) == SocketTaken)
            {
                return;
            }

            _socketClosed = true;
            _abortReason = reason;
            try
            {
                if (reset)
                {
                    Socket.LingerState = new LingerOption(true, 0);
                }
                else if (reason is not null)
                {
                    Socket.Shutdown(SocketShutdown.Both);
                }
            }
            catch (SocketException)
            {
                // Closing below is all that is left to do.
            }

            Socket.Dispose();
        }

        CancelClosedToken();
    }

    private void CancelClosedToken()
    {
        try
        {
            Volatile.Read(ref _closedTokenSource)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
