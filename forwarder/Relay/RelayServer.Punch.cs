using Forwarder.Transports.Mux;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// Hole-punching introductions: a node that wants a direct QUIC link (or a TCP path by
/// simultaneous open) to another behind NAT asks here; each learns the UDP (TCP) address the
/// relay saw the other's token come from, and the far node starts probing before the asker
/// dials, so both NATs hold a mapping for the pair. The relay issues each node's token over that
/// node's session (the asker's in a first answer on its request stream, the far node's in its
/// introduction), so a token sent from anywhere else binds nothing, and only that node learns
/// the address its token came from. The asker's stream carries two answers: Connected and its
/// token, then Connected and the far node's address (or a status saying why not).
/// </content>
internal sealed partial class RelayServer
{
    private static readonly TimeSpan TokenWait = TimeSpan.FromSeconds(3);

    /// <summary>Answers a <see cref="TunnelRequestKind.Punch"/> (<see cref="TunnelRequestKind.TcpPunch"/>) with the far node's UDP (TCP) address, or a status saying why not.</summary>
    private async Task IntroduceAsync(RelayNode source, YamuxStream stream, TunnelRequest punch)
    {
        if (!source.Introductions.TryTake(1))
        {
            source.IntroductionLimited(far: false);
            LogIntroductionsLimited(source.Name);
            await AnswerAsync(stream, TunnelStatus.Limited).ConfigureAwait(false);
            return;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        deadline.CancelAfter(FarAnswerTimeout);
        var (tokens, farKind, protocol) = punch.Kind == TunnelRequestKind.TcpPunch
            ? (TcpTokens, TunnelRequestKind.TcpPunched, "TCP")
            : (_rendezvous?.Tokens, TunnelRequestKind.Punched, "UDP");
        if (tokens is null)
        {
            await AnswerAsync(stream, TunnelStatus.Unreachable).ConfigureAwait(false);
            return;
        }

        if (punch.Node == source.Name || registry.Registered(punch.Node) is null)
        {
            await AnswerAsync(stream, TunnelStatus.UnknownNode).ConfigureAwait(false);
            return;
        }

        if (tokens.Issue(source.Name) is not { } token)
        {
            source.IntroductionLimited(far: false);
            await AnswerAsync(stream, TunnelStatus.Limited).ConfigureAwait(false);
            return;
        }

        // First answer: the token, which the node now sends from the port it punches from.
        TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
        TunnelHandshake.WriteField(stream.Transport.Output, token);
        await stream.Transport.Output.FlushAsync(deadline.Token).ConfigureAwait(false);
        if (await tokens.SeenAsync(token, source.Name, TokenWait, deadline.Token).ConfigureAwait(false) is not { } asker)
        {
            await AnswerAsync(stream, TunnelStatus.Unreachable).ConfigureAwait(false);
            return;
        }

        if (registry.Registered(punch.Node)?.Session is not { } far)
        {
            await AnswerAsync(stream, TunnelStatus.UnknownNode).ConfigureAwait(false);
            return;
        }

        // From the far node's places for introductions, at most two for this asker: a node asking
        // without end cannot take those it answers others with, nor the ones it punches with itself.
        if (tokens.Issue(punch.Node, source.Name) is not { } farToken)
        {
            source.IntroductionLimited(far: true);
            await AnswerAsync(stream, TunnelStatus.Limited).ConfigureAwait(false);
            return;
        }

        try
        {
            var (farStream, status) = await TunnelHandshake.RequestAsync(far, new TunnelRequest(farKind, source.Name, IntroductionTarget.Format(asker, farToken)), deadline.Token).ConfigureAwait(false);
            if (farStream is null)
            {
                if (status == TunnelStatus.Limited)
                {
                    source.IntroductionLimited(far: true);
                }

                await AnswerAsync(stream, status ?? TunnelStatus.Unreachable).ConfigureAwait(false);
                return;
            }

            await using (farStream)
            {
                if (await tokens.SeenAsync(farToken, punch.Node, TokenWait, deadline.Token).ConfigureAwait(false) is not { } answerer)
                {
                    await AnswerAsync(stream, TunnelStatus.Unreachable).ConfigureAwait(false);
                    return;
                }

                TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
                TunnelHandshake.WriteField(stream.Transport.Output, answerer.ToString());
                await stream.Transport.Output.FlushAsync(deadline.Token).ConfigureAwait(false);
                LogIntroduced(logger, source.Name, protocol, asker.ToString(), punch.Node, answerer.ToString());
            }
        }
        finally
        {
            // A far node that never answered must not keep the place the token took in its quota.
            tokens.Withdraw(farToken);
        }
    }

    private long _introductionsLimitedLoggedAt;

    /// <summary>At most once a minute over all nodes: a node asking without end must not flood the log.</summary>
    private void LogIntroductionsLimited(string node)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _introductionsLimitedLoggedAt);
        if ((last == 0 || now - last >= 60_000) && Interlocked.CompareExchange(ref _introductionsLimitedLoggedAt, now, last) == last)
        {
            LogIntroductionsLimited(logger, node, RelayNode.IntroductionsPerSecond);
        }
    }

    [LoggerMessage(EventId = 810, Level = LogLevel.Warning, Message = "Node {Node} asked for more than {PerSecond} hole-punching introductions a second; refused the rest (logged once a minute)")]
    private static partial void LogIntroductionsLimited(ILogger logger, string node, int perSecond);

    [LoggerMessage(EventId = 806, Level = LogLevel.Information, Message = "Introduced node {Asker} ({Protocol} {AskerAddress}) to node {Far} ({FarAddress}) for hole punching")]
    private static partial void LogIntroduced(ILogger logger, string asker, string protocol, string askerAddress, string far, string farAddress);
}
