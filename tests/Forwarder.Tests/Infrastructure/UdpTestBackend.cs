using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// A udp endpoint (on loopback unless told) answering every datagram with "NAME:" and the datagram (or, for one
/// longer than 1 KiB, "NAME:#LENGTH"), and remembering which addresses sent to it.
/// </summary>
internal sealed class UdpTestBackend : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Task _serving;

    public UdpTestBackend(string name, IPAddress? address = null)
    {
        Name = name;
        address ??= IPAddress.Loopback;
        _socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(new IPEndPoint(address, 0));
        _serving = ServeAsync();
    }

    public string Name { get; }

    public string Address => _socket.LocalEndPoint!.ToString()!;

    /// <summary>The addresses datagrams came from: one per forwarder session.</summary>
    public ConcurrentDictionary<EndPoint, int> Peers { get; } = new();

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _serving;
    }

    private async Task ServeAsync()
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (_socket.SafeHandle.IsClosed)
                {
                    return;
                }

                continue;
            }

            Peers.AddOrUpdate(received.RemoteEndPoint, 1, (_, n) => n + 1);
            var body = received.ReceivedBytes > 1024 ? $"#{received.ReceivedBytes}" : Encoding.UTF8.GetString(buffer, 0, received.ReceivedBytes);
            await _socket.SendToAsync(Encoding.UTF8.GetBytes($"{Name}:{body}"), SocketFlags.None, received.RemoteEndPoint);
        }
    }
}

/// <summary>A udp client on loopback that sends a datagram and waits (with a deadline) for the answer.</summary>
internal sealed class UdpTestClient : IDisposable
{
    private readonly Socket _socket;

    public UdpTestClient(IPEndPoint front, IPAddress? source = null)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(new IPEndPoint(source ?? IPAddress.Loopback, 0));
        _socket.Connect(front);
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public Task SendAsync(byte[] datagram) => _socket.SendAsync(datagram, SocketFlags.None);

    /// <summary>Sends <paramref name="text"/> and returns the answer; null when none came within <paramref name="timeout"/>.</summary>
    public async Task<string?> AskAsync(string text, TimeSpan? timeout = null)
    {
        await _socket.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None);
        return await ReceiveAsync(timeout);
    }

    /// <summary>The next datagram as text; null when none came within <paramref name="timeout"/> (30 s by default).</summary>
    public async Task<string?> ReceiveAsync(TimeSpan? timeout = null)
    {
        var buffer = new byte[64 * 1024];
        using var deadline = new CancellationTokenSource(timeout ?? Eventually.DefaultTimeout);
        try
        {
            var length = await _socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            return Encoding.UTF8.GetString(buffer, 0, length);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>
    /// Asks until an answer comes: datagrams may be lost, and a peer started by the test may not
    /// be receiving yet. Fails after the default deadline.
    /// </summary>
    public async Task<string> AskUntilAnsweredAsync(string text)
    {
        var deadline = DateTime.UtcNow + Eventually.DefaultTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await AskAsync(text, TimeSpan.FromMilliseconds(500)) is { } answer)
            {
                return answer;
            }
        }

        throw new TimeoutException($"No answer to '{text}' within {Eventually.DefaultTimeout}.");
    }

    public void Dispose() => _socket.Dispose();
}
