using System.Net;
using System.Net.Sockets;

namespace Forwarder.Relay;

/// <summary>
/// The relay's UDP side, on its listen port: a node about to punch a hole sends a random token
/// from the UDP port it will use, and the relay notes the address the datagram came from (after
/// the node's NAT). The token is then named over the node's authenticated session, so only the
/// node that sent it learns or hands out that address. Nothing is ever sent back over UDP.
/// </summary>
internal sealed class RelayRendezvous : IAsyncDisposable
{
    /// <summary>What a token datagram starts with; 16 random bytes follow.</summary>
    public static ReadOnlySpan<byte> Magic => "FWRV"u8;

    public const int TokenLength = 16;

    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Tokens nobody waits for yet, kept at most this many: anyone can send datagrams to this port
    /// (from spoofed sources too), so a flood fills the table and is then dropped, while tokens a
    /// node already named over its session still get through.
    /// </summary>
    private const int MaxUnclaimed = 4096;

    private readonly Socket _socket;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (IPEndPoint Seen, long At)> _unclaimed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource<IPEndPoint>> _waiting = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _receiving;
    private long _sweptAt;

    public RelayRendezvous(IPEndPoint endPoint)
    {
        _socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            _socket.Bind(endPoint);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        _receiving = ReceiveAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Tokens seen that nobody has asked for yet.</summary>
    internal int Unclaimed
    {
        get
        {
            lock (_lock)
            {
                return _unclaimed.Count;
            }
        }
    }

    /// <summary>Where the datagram with <paramref name="token"/> (hex) came from, waiting up to <paramref name="timeout"/> for it; null if it never came. A token answers once.</summary>
    public async Task<IPEndPoint?> SeenAsync(string token, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource<IPEndPoint> waiter;
        lock (_lock)
        {
            if (_unclaimed.Remove(token, out var seen) && !Expired(seen.At, Environment.TickCount64))
            {
                return seen.Seen;
            }

            if (!_waiting.TryGetValue(token, out waiter!))
            {
                waiter = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiting[token] = waiter;
            }
        }

        try
        {
            return await waiter.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            lock (_lock)
            {
                // Only this call's waiter: another asking for the same token may have replaced it.
                if (_waiting.TryGetValue(token, out var current) && current == waiter)
                {
                    _waiting.Remove(token);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _receiving.ConfigureAwait(false);
        _socket.Dispose();
        _stopping.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[64];
        var from = new SocketAddress(_socket.AddressFamily);
        while (!_stopping.IsCancellationRequested)
        {
            int received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            if (received != Magic.Length + TokenLength || !buffer.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            {
                continue;
            }

            var token = Convert.ToHexStringLower(buffer, Magic.Length, TokenLength);
            Note(token, (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(from));
        }
    }

    /// <summary>Hands the address to whoever waits for the token, else keeps it (bounded) for a node about to name it.</summary>
    private void Note(string token, IPEndPoint seen)
    {
        TaskCompletionSource<IPEndPoint>? waiter;
        lock (_lock)
        {
            if (!_waiting.Remove(token, out waiter))
            {
                var now = Environment.TickCount64;
                if (_unclaimed.Count >= MaxUnclaimed && now - _sweptAt >= 1000)
                {
                    // At most once a second, so a flood costs one scan a second, not one per datagram.
                    _sweptAt = now;
                    foreach (var (key, value) in _unclaimed)
                    {
                        if (Expired(value.At, now))
                        {
                            _unclaimed.Remove(key);
                        }
                    }
                }

                if (_unclaimed.Count < MaxUnclaimed || _unclaimed.ContainsKey(token))
                {
                    _unclaimed[token] = (seen, now);
                }

                return;
            }
        }

        waiter.TrySetResult(seen);
    }

    private static bool Expired(long at, long now) => now - at > (long)Lifetime.TotalMilliseconds;
}
