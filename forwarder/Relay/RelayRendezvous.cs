using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Forwarder.Relay;

/// <summary>
/// The relay's UDP side, on its listen port: a node about to punch a hole sends the token the
/// relay issued it from the UDP port it will use, and the relay notes the address the datagram
/// came from (after the node's NAT) in <see cref="Tokens"/>. Nothing is ever sent back over UDP.
/// </summary>
internal sealed class RelayRendezvous : IAsyncDisposable
{
    /// <summary>What a token datagram starts with; the token's 16 bytes follow.</summary>
    public static ReadOnlySpan<byte> Magic => "FWRV"u8;

    public const int TokenLength = 16;

    /// <summary>A fresh token and the message that carries it: <paramref name="magic"/> (UDP's or TCP's) then the token's random bytes.</summary>
    public static (string Token, byte[] Message) NewToken(ReadOnlySpan<byte> magic)
    {
        var message = new byte[magic.Length + TokenLength];
        magic.CopyTo(message);
        RandomNumberGenerator.Fill(message.AsSpan(magic.Length));
        return (Convert.ToHexStringLower(message, magic.Length, TokenLength), message);
    }

    /// <summary>The message that carries <paramref name="token"/> (as issued: lowercase hex of <see cref="TokenLength"/> bytes) after <paramref name="magic"/>; null when it is not such a token.</summary>
    public static byte[]? Message(ReadOnlySpan<byte> magic, string? token)
    {
        var message = new byte[magic.Length + TokenLength];
        magic.CopyTo(message);
        return token is { Length: TokenLength * 2 } && Convert.FromHexString(token, message.AsSpan(magic.Length), out _, out var written) == System.Buffers.OperationStatus.Done && written == TokenLength
            ? message
            : null;
    }

    /// <summary>An IPv4 address as such: a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d, which IPv4 sockets cannot send to.</summary>
    public static IPEndPoint Unmapped(IPEndPoint endPoint)
        => endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    private readonly Socket _socket;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _receiving;

    public RelayRendezvous(IPEndPoint endPoint, TimeProvider time)
    {
        Tokens = new RendezvousTokens(time);
        _socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            // As the listen port: [::] takes IPv4 nodes' tokens too, whatever the host's bindv6only says.
            if (endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                _socket.DualMode = true;
            }

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

    /// <summary>The tokens seen, and the addresses they came from.</summary>
    public RendezvousTokens Tokens { get; }

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
            Tokens.Note(token, Unmapped(seen));
        }
    }
}
