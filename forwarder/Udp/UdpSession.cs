using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.Udp;

/// <summary>
/// One client address of a udp listener: a socket connected to the endpoint the balancer chose,
/// so the endpoint's replies arrive on it and go back to that client only. Datagrams to the
/// endpoint are sent by the listener's receive loop; this session's own loop carries the replies.
/// Closing is idempotent and keeps the first reason.
/// </summary>
internal sealed class UdpSession
{
    private readonly Socket _listener;
    private readonly Socket _upstream;
    private readonly UdpListenerHost _host;
    private readonly TimeProvider _time;
    private readonly ListenerMetrics _listenerMetrics;
    private readonly UdpMetrics _metrics;
    private long _lastActive;
    private int _closed;

    public UdpSession(UdpListenerHost host, Socket listener, SocketAddress client, Socket upstream, ServiceModel service, UpstreamEndpoint endpoint, TimeProvider time, ListenerMetrics listenerMetrics, UdpMetrics metrics)
    {
        _host = host;
        _listener = listener;
        Client = client;
        _upstream = upstream;
        Service = service;
        Endpoint = endpoint;
        _time = time;
        _listenerMetrics = listenerMetrics;
        _metrics = metrics;
        _lastActive = time.GetTimestamp();
    }

    /// <summary>The client's address: the session's key, and where replies go.</summary>
    public SocketAddress Client { get; }

    public ServiceModel Service { get; }

    public UpstreamEndpoint Endpoint { get; }

    /// <summary>The reply loop; it never throws, and ends once the session is closed.</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    public bool Closed => Volatile.Read(ref _closed) != 0;

    public TimeSpan Idle => _time.GetElapsedTime(Volatile.Read(ref _lastActive));

    public void Start() => Completion = RelayRepliesAsync();

    /// <summary>Forwards one client datagram to the endpoint; false when it could not be sent.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> SendAsync(ReadOnlyMemory<byte> datagram)
    {
        try
        {
            await _upstream.SendAsync(datagram, SocketFlags.None).ConfigureAwait(false);
        }
        catch (SocketException ex) when (IsUnreachable(ex.SocketErrorCode))
        {
            // An ICMP error for an earlier datagram is reported on this send.
            _host.Close(this, UdpSessionEnd.Unreachable);
            return false;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }

        Touch();
        _metrics.ForwardedIn();
        _listenerMetrics.AddReceived(datagram.Length);
        Service.Metrics.AddToUpstream(datagram.Length);
        return true;
    }

    /// <summary>Ends the session once: the first caller wins and closes the upstream socket, which ends the reply loop.</summary>
    public bool TryClose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return false;
        }

        _upstream.Dispose();
        return true;
    }

    private void Touch() => Volatile.Write(ref _lastActive, _time.GetTimestamp());

    private async Task RelayRepliesAsync()
    {
        while (true)
        {
            try
            {
                // A zero-byte peek waits for a reply without holding a buffer, so a quiet session
                // costs no 64 KiB; the buffer is rented only while a datagram is in hand.
                await _upstream.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek).ConfigureAwait(false);
            }
            catch (SocketException ex) when (IsUnreachable(ex.SocketErrorCode))
            {
                _host.Close(this, UdpSessionEnd.Unreachable);
                return;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Closed by the host (idle, reload, shutdown).
                return;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(UdpListenerHost.MaxDatagram);
            try
            {
                int length;
                try
                {
                    // As Memory: a byte[] would pick the ArraySegment overload, which allocates a Task per call.
                    length = await _upstream.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).ConfigureAwait(false);
                }
                catch (SocketException ex) when (IsUnreachable(ex.SocketErrorCode))
                {
                    _host.Close(this, UdpSessionEnd.Unreachable);
                    return;
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                Touch();
                try
                {
                    await _listener.SendToAsync(buffer.AsMemory(0, length), SocketFlags.None, Client).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    // The listener could not send this reply (its buffer full, or it stopped): UDP may lose it.
                    _metrics.Dropped(UdpDrop.SendFailed);
                    continue;
                }

                _metrics.ForwardedOut();
                _listenerMetrics.AddSent(length);
                Service.Metrics.AddFromUpstream(length);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static bool IsUnreachable(SocketError error)
        => error is SocketError.ConnectionRefused or SocketError.ConnectionReset or SocketError.HostUnreachable or SocketError.NetworkUnreachable;
}
