using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// The TCP rendezvous, on the relay's listen port beside the nodes' TLS sessions: a node about to
/// open a TCP path by simultaneous open connects from the port it will use and sends
/// <see cref="TcpMagic"/> and a random token, nothing else. The relay notes the address the
/// connection came from (after the node's NAT) under the token and holds the connection, so the
/// NAT keeps that mapping, until the node closes it or the token's lifetime is over. A TLS
/// ClientHello never starts with the magic's first byte, so the two are told apart by it.
/// </content>
internal sealed partial class RelayServer
{
    /// <summary>What a TCP rendezvous connection sends first; <see cref="RelayRendezvous.TokenLength"/> random bytes follow.</summary>
    public static ReadOnlySpan<byte> TcpMagic => "FWRT"u8;

    /// <summary>Tokens seen over TCP: an address seen over UDP never answers for TCP, nor the other way.</summary>
    private readonly RendezvousTokens _tcpTokens = new(TimeProvider.System);

    /// <summary>
    /// Serves <paramref name="connection"/> as a TCP rendezvous when it opens with
    /// <see cref="TcpMagic"/>, to its end; false, with nothing read from it, when it does not.
    /// </summary>
    private async Task<bool> TcpRendezvousAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        deadline.CancelAfter(HandshakeTimeout);
        try
        {
            var length = TcpMagic.Length + RelayRendezvous.TokenLength;
            byte[]? hello;
            while (true)
            {
                var result = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty && buffer.FirstSpan[0] != TcpMagic[0])
                {
                    input.AdvanceTo(buffer.Start);
                    return false;
                }

                if (buffer.Length >= length || result.IsCompleted)
                {
                    hello = buffer.Length >= length ? buffer.Slice(0, length).ToArray() : null;
                    input.AdvanceTo(buffer.End);
                    break;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
            }

            if (hello is null || !hello.AsSpan(0, TcpMagic.Length).SequenceEqual(TcpMagic) || connection.RemoteEndPoint is not IPEndPoint seen)
            {
                LogTcpRendezvousRefused(logger, connection.RemoteEndPoint?.ToString() ?? "?");
                return true;
            }

            _tcpTokens.Note(Convert.ToHexStringLower(hello, TcpMagic.Length, RelayRendezvous.TokenLength), seen);

            // Held for the punch: whatever else the node sends is not read, and its close ends the hold.
            using var hold = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            hold.CancelAfter(RendezvousTokens.Lifetime);
            while (true)
            {
                var rest = await input.ReadAsync(hold.Token).ConfigureAwait(false);
                input.AdvanceTo(rest.Buffer.End);
                if (rest.IsCompleted)
                {
                    return true;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException or ConnectionAbortedException)
        {
            // Silent past the deadline, reset, or the relay is stopping: no token, or the hold is over.
            return true;
        }
    }

    [LoggerMessage(EventId = 808, Level = LogLevel.Warning, Message = "TCP rendezvous connection from {Remote} sent no token; closed")]
    private static partial void LogTcpRendezvousRefused(ILogger logger, string remote);
}
