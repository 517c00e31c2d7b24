using System.Collections.Concurrent;
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

    private readonly Socket _socket;
    private readonly ConcurrentDictionary<string, (IPEndPoint Seen, long At)> _seen = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<IPEndPoint>> _waiting = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _receiving;

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

    /// <summary>Where the datagram with <paramref name="token"/> (hex) came from, waiting up to <paramref name="timeout"/> for it; null if it never came.</summary>
    public async Task<IPEndPoint?> SeenAsync(string token, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var waiter = _waiting.GetOrAdd(token, static _ => new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_seen.TryGetValue(token, out var seen))
        {
            waiter.TrySetResult(seen.Seen);
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
            _waiting.TryRemove(token, out _);
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
            var seen = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(from);
            if (_seen.Count > 1024)
            {
                Forget();
            }

            _seen[token] = (seen, Environment.TickCount64);
            if (_waiting.TryGetValue(token, out var waiter))
            {
                waiter.TrySetResult(seen);
            }
        }
    }

    /// <summary>Drops tokens older than their lifetime, so a flood of them cannot grow the table for long.</summary>
    private void Forget()
    {
        var cutoff = Environment.TickCount64 - (long)Lifetime.TotalMilliseconds;
        foreach (var (token, seen) in _seen)
        {
            if (seen.At < cutoff)
            {
                _seen.TryRemove(token, out _);
            }
        }
    }
}
