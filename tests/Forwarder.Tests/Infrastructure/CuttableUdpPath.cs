using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// A UDP path that can be cut, as a NAT mapping that expires: datagrams to its loopback port go on
/// to a target from a socket of its own, and the target's answers come back to the last sender.
/// Once cut, both directions are dropped without a word (no ICMP error), so each end notices only
/// by its idle timeout.
/// </summary>
internal sealed class CuttableUdpPath : IAsyncDisposable
{
    private readonly Socket _front = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly Socket _back = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _relaying;
    private volatile EndPoint? _sender;
    private volatile bool _cut;

    public CuttableUdpPath(IPEndPoint target)
    {
        _front.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _back.Connect(target);
        _relaying = Task.WhenAll(ForwardAsync(), BackwardAsync());
    }

    /// <summary>Where to send to reach the target through the path.</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_front.LocalEndPoint!;

    public void Cut() => _cut = true;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _front.Dispose();
        _back.Dispose();
        await _relaying;
        _stop.Dispose();
    }

    private async Task ForwardAsync()
    {
        var buffer = new byte[65536];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var received = await _front.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                _sender = received.RemoteEndPoint;
                if (!_cut)
                {
                    await _back.SendAsync(buffer.AsMemory(0, received.ReceivedBytes), SocketFlags.None, _stop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // An ICMP error from a previous send (the target not listening yet): UDP carries on.
            }
        }
    }

    private async Task BackwardAsync()
    {
        var buffer = new byte[65536];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var count = await _back.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (!_cut && _sender is { } sender)
                {
                    await _front.SendToAsync(buffer.AsMemory(0, count), SocketFlags.None, sender, _stop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // As above.
            }
        }
    }
}
