using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// The TCP rendezvous, on the relay's listen port beside the nodes' TLS sessions: a node about to
/// open a TCP path by simultaneous open connects from the port it will use and sends
/// <see cref="TcpMagic"/> and the token the relay issued it over its session, nothing else. The
/// relay notes the address the connection came from (after the node's NAT) under the token and
/// holds the connection, so the NAT keeps that mapping, until the node closes it or the token's
/// lifetime is over; a connection with a token not issued (or bound already) is closed at once,
/// and a hold whose node does not ask for the address within <see cref="UnnamedHoldTimeout"/> then. A TLS
/// ClientHello never starts with the magic's first byte, so the two are told apart by it.
/// </content>
internal sealed partial class RelayServer
{
    /// <summary>What a TCP rendezvous connection sends first; the <see cref="RelayRendezvous.TokenLength"/> bytes of an issued token follow.</summary>
    public static ReadOnlySpan<byte> TcpMagic => "FWRT"u8;

    /// <summary>How long a connection that starts with the magic's first byte may take to send the rest of its hello.</summary>
    private static readonly TimeSpan TcpHelloTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Rendezvous connections held at once, at most, and from one source (an IPv4 address or an
    /// IPv6 /64, see <see cref="SourceKey"/>): anyone can open
    /// them (they come before any certificate), and each holds a socket for seconds, or up to
    /// the tokens' lifetime once a node names its token. A node holds one per punch attempt.
    /// </summary>
    private const int MaxTcpHolds = 1024;

    private const int MaxTcpHoldsPerSource = 16;

    /// <summary>
    /// Holds from sources no registered node's session comes from, at most: the rest of
    /// <see cref="MaxTcpHolds"/> is kept for the addresses nodes are known by, so a flood from
    /// strangers (who need no certificate) cannot take every hold from the nodes that punch.
    /// </summary>
    private const int MaxTcpHoldsForStrangers = MaxTcpHolds - (MaxTcpHolds / 4);

    /// <summary>
    /// How long a hold waits for a node to name its token over its session: a real node names it
    /// within a round trip of sending it (the asker in its request, the far node in its answer),
    /// while a stranger's hold would otherwise take a socket for the token's whole lifetime.
    /// </summary>
    internal static readonly TimeSpan UnnamedHoldTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Tokens seen over TCP: an address seen over UDP never answers for TCP, nor the other way.</summary>
    public RendezvousTokens TcpTokens { get; } = new(time);

    private readonly Dictionary<IPAddress, int> _tcpHolds = [];
    private int _tcpHoldsTotal;
    private int _tcpHoldsOfStrangers;
    private long _tcpHoldsRefusedLoggedAt;

    /// <summary>
    /// Serves <paramref name="connection"/> as a TCP rendezvous when it opens with
    /// <see cref="TcpMagic"/>, to its end; false, with nothing read from it, when it does not.
    /// </summary>
    private async Task<bool> TcpRendezvousAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        var accepted = time.GetTimestamp();
        using var deadline = new CancellationTokenSource(HandshakeTimeout, time);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, deadline.Token);
        try
        {
            var length = TcpMagic.Length + RelayRendezvous.TokenLength;
            byte[]? hello;
            var started = false;
            while (true)
            {
                var result = await input.ReadAsync(reading.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty && buffer.FirstSpan[0] != TcpMagic[0])
                {
                    input.AdvanceTo(buffer.Start);
                    return false;
                }

                if (!buffer.IsEmpty && !started)
                {
                    // A token hello is 20 bytes in one segment: its sender gets seconds, not the TLS
                    // handshake's time, and never more than is left of that.
                    started = true;
                    deadline.CancelAfter(TimeSpan.FromTicks(Math.Clamp((HandshakeTimeout - time.GetElapsedTime(accepted)).Ticks, 0, TcpHelloTimeout.Ticks)));
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

            var source = SourceKey.Of(seen.Address);
            var stranger = !registry.IsNodeSource(source);
            if (!TryHold(source, stranger))
            {
                LogTcpHoldsFull(seen);
                return true;
            }

            try
            {
                // Both deadlines run from before the token is noted, so none starts late.
                using var unnamed = new CancellationTokenSource(UnnamedHoldTimeout, time);
                using var lifetime = new CancellationTokenSource(RendezvousTokens.Lifetime, time);
                var named = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (!TcpTokens.Note(Convert.ToHexStringLower(hello, TcpMagic.Length, RelayRendezvous.TokenLength), seen, named))
                {
                    // Not a token this relay issued, or one already bound to another address: nothing to hold.
                    return true;
                }

                if (!await HoldAsync(input, unnamed.Token).ConfigureAwait(false))
                {
                    return true;
                }

                if (!named.Task.IsCompleted)
                {
                    registry.TcpHoldUnnamed();
                    return true;
                }

                await HoldAsync(input, lifetime.Token).ConfigureAwait(false);
                return true;
            }
            finally
            {
                Release(source, stranger);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException or ConnectionAbortedException)
        {
            // Silent past the deadline, reset, or the relay is stopping: no token, or the hold is over.
            return true;
        }
    }

    /// <summary>
    /// Holds a rendezvous connection for the punch: whatever else the node sends is not read.
    /// True when <paramref name="until"/> ended the hold (or the relay is stopping), false when the node closed its side.
    /// </summary>
    private async Task<bool> HoldAsync(System.IO.Pipelines.PipeReader input, CancellationToken until)
    {
        using var hold = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, until);
        try
        {
            while (true)
            {
                var rest = await input.ReadAsync(hold.Token).ConfigureAwait(false);
                input.AdvanceTo(rest.Buffer.End);
                if (rest.IsCompleted)
                {
                    return false;
                }
            }
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            return true;
        }
    }

    /// <summary>
    /// Counts a hold for <paramref name="source"/> (a <see cref="SourceKey"/>); false (nothing
    /// counted) when it or the relay is at its limit, or strangers are at theirs.
    /// </summary>
    private bool TryHold(IPAddress source, bool stranger)
    {
        lock (_tcpHolds)
        {
            var held = _tcpHolds.GetValueOrDefault(source);
            if (held >= MaxTcpHoldsPerSource || _tcpHoldsTotal >= MaxTcpHolds || (stranger && _tcpHoldsOfStrangers >= MaxTcpHoldsForStrangers))
            {
                return false;
            }

            _tcpHolds[source] = held + 1;
            _tcpHoldsTotal++;
            _tcpHoldsOfStrangers += stranger ? 1 : 0;
            return true;
        }
    }

    private void Release(IPAddress source, bool stranger)
    {
        lock (_tcpHolds)
        {
            _tcpHoldsTotal--;
            _tcpHoldsOfStrangers -= stranger ? 1 : 0;
            var held = _tcpHolds[source] - 1;
            if (held == 0)
            {
                _tcpHolds.Remove(source);
            }
            else
            {
                _tcpHolds[source] = held;
            }
        }
    }

    /// <summary>At most once a minute: a flood of token connections must not flood the log too.</summary>
    private void LogTcpHoldsFull(IPEndPoint seen)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _tcpHoldsRefusedLoggedAt);
        if ((last == 0 || now - last >= 60_000) && Interlocked.CompareExchange(ref _tcpHoldsRefusedLoggedAt, now, last) == last)
        {
            LogTcpRendezvousLimited(logger, seen.ToString(), MaxTcpHoldsPerSource, MaxTcpHolds, MaxTcpHoldsForStrangers);
        }
    }

    [LoggerMessage(EventId = 809, Level = LogLevel.Warning, Message = "TCP rendezvous connection from {Remote} closed: at most {PerSource} are held per source address and {Total} in all, {Strangers} of them from addresses no registered node comes from (logged once a minute)")]
    private static partial void LogTcpRendezvousLimited(ILogger logger, string remote, int perSource, int total, int strangers);

    [LoggerMessage(EventId = 808, Level = LogLevel.Warning, Message = "TCP rendezvous connection from {Remote} sent no token; closed")]
    private static partial void LogTcpRendezvousRefused(ILogger logger, string remote);
}
