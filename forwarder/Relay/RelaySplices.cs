using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Configuration;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <summary>
/// The relay's splice port. A node asks over its authenticated session for a rendezvous with
/// another (<see cref="RelayServer"/>); each of the two gets its own one-time ticket, bound to
/// the pair, and opens a plain TCP connection here that starts with it. When both halves are in,
/// the relay answers each one byte and joins the two sockets in the epoll splicer, which copies
/// the bytes of the nodes' own end-to-end TLS link without ever being able to read them. A
/// ticket unknown here (forged, replayed, or void because its rendezvous expired) closes only its
/// own connection; a half whose partner does not come within the ticket lifetime is closed.
/// </summary>
internal sealed partial class RelaySplices : IAsyncDisposable
{
    /// <summary>What a half's connection starts with; <see cref="TicketLength"/> bytes of ticket follow.</summary>
    public static ReadOnlySpan<byte> Magic => "FWSP"u8;

    public const int TicketLength = 16;

    /// <summary>The byte each half reads once its partner is in and the splice starts.</summary>
    public const byte Paired = 0;

    private readonly Socket _listener;
    private readonly SocketSplicer _splicer;
    private readonly RelayRegistry _registry;
    private readonly RelaySpliceConfig _config;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (Rendezvous Rendezvous, bool Asker)> _tickets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Rendezvous, byte> _open = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _accepting;
    private readonly ITimer _sweeper;
    private int _sweeping;

    public RelaySplices(IPEndPoint endPoint, RelaySpliceConfig config, RelayRegistry registry, TimeProvider time, ILogger logger)
    {
        (_config, _registry, _time, _logger) = (config, registry, time, logger);
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // As the listen port: [::] takes IPv4 nodes too, whatever the host's bindv6only says.
            if (endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                _listener.DualMode = true;
            }

            _listener.Bind(endPoint);
            _listener.Listen(512);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }

        // A thread of its own, so the node is never as slow as the thread pool under load, and
        // since there are only two connections per link a pair of threads cost nothing.
        _splicer = new SocketSplicer(threads: 2);
        _accepting = new Thread(AcceptLoop) { IsBackground = true, Name = "relay-splice-accept" };
        _accepting.Start();

        // A spliced link's timeouts are checked in one sweep over them all, at a fraction of the
        // shorter timeout (at most a second late), rather than a timer re-armed per chunk.
        var period = TimeSpan.FromTicks(Math.Min(TimeSpan.TicksPerSecond, Math.Min(config.IdleTimeout.Ticks, config.HalfCloseTimeout.Ticks) / 4));
        _sweeper = time.CreateTimer(_ => Sweep(), null, period, period);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Rendezvous not yet over: waiting for their halves, or spliced.</summary>
    internal int Open => _open.Count;

    /// <summary>
    /// A rendezvous between <paramref name="asker"/> and <paramref name="far"/>, with one ticket
    /// each. It takes over one of the asker's streams (counted by the caller), released when the
    /// splice ends, the rendezvous expires or <see cref="Cancel"/> drops it.
    /// </summary>
    public Rendezvous Issue(RelayNode asker, RelayNode far)
    {
        var rendezvous = new Rendezvous(asker, far, NewTicket(), NewTicket(), _time);
        lock (_lock)
        {
            _tickets[rendezvous.AskerTicket] = (rendezvous, true);
            _tickets[rendezvous.FarTicket] = (rendezvous, false);
        }

        _open[rendezvous] = 0;
        rendezvous.Timer = _time.CreateTimer(state => Expire((Rendezvous)state!), rendezvous, _config.TicketLifetime, Timeout.InfiniteTimeSpan);
        return rendezvous;
    }

    /// <summary>Drops a rendezvous the far node refused (nothing is counted against anyone): its tickets are void.</summary>
    public void Cancel(Rendezvous rendezvous) => End(rendezvous, expired: false);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _sweeper.DisposeAsync().ConfigureAwait(false);
        _listener.Dispose();
        _accepting.Join();
        foreach (var rendezvous in _open.Keys)
        {
            rendezvous.Splice?.Abort();
            End(rendezvous, expired: false);
        }

        await Task.WhenAll(_open.Keys.Select(r => r.Done)).ConfigureAwait(false);
        _splicer.Dispose();
        _stopping.Dispose();
    }

    private static string NewTicket() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(TicketLength));

    /// <summary>Files a half under its rendezvous by its ticket (null: none came, or not a ticket); never throws.</summary>
    private void Present(Socket socket, string? ticket)
    {
        Rendezvous? rendezvous = null;
        var complete = false;
        lock (_lock)
        {
            if (ticket is not null && _tickets.Remove(ticket, out var entry))
            {
                rendezvous = entry.Rendezvous;
                if (entry.Asker)
                {
                    rendezvous.AskerSocket = socket;
                }
                else
                {
                    rendezvous.FarSocket = socket;
                }

                complete = rendezvous.AskerSocket is not null && rendezvous.FarSocket is not null;
                rendezvous.Spliced = complete;
            }
        }

        if (rendezvous is null)
        {
            // Forged, replayed, void, or never sent in time: only this connection goes; every pair keeps going.
            _registry.TicketRefused(expired: false);
            LogTicketRefused(_logger, RemoteOf(socket));
            socket.Dispose();
            return;
        }

        if (complete)
        {
            rendezvous.Timer?.Dispose();
            rendezvous.Done = SpliceAsync(rendezvous);
        }
    }

    private static string RemoteOf(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (SocketException)
        {
            return "?";
        }
    }

    /// <summary>Tells both halves they are paired and splices them until both FINs cross or either fails.</summary>
    private async Task SpliceAsync(Rendezvous rendezvous)
    {
        var asker = rendezvous.AskerSocket!;
        var far = rendezvous.FarSocket!;
        using (asker)
        using (far)
        {
            try
            {
                await Task.Yield();
                ReadOnlySpan<byte> paired = [Paired];
                asker.Send(paired);
                far.Send(paired);
                rendezvous.Asker.SpliceStarted();
                rendezvous.Touch();
                LogSpliced(_logger, rendezvous.Asker.Name, rendezvous.Far.Name);
                var splice = _splicer.Splice(asker, far, rendezvous);
                rendezvous.Started(splice);
                if (_stopping.IsCancellationRequested)
                {
                    splice.Abort();
                }

                await splice.Completion.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // A half went before the splice started: the other is closed with it.
            }
            finally
            {
                rendezvous.Asker.SpliceEnded();
                rendezvous.Asker.StreamClosed();
                _open.TryRemove(rendezvous, out _);
            }
        }
    }

    /// <summary>The rendezvous' lifetime ran out: closes a half that came alone and voids the other ticket.</summary>
    private void Expire(Rendezvous rendezvous) => End(rendezvous, expired: true);

    private void End(Rendezvous rendezvous, bool expired)
    {
        Socket? asker, far;
        lock (_lock)
        {
            if (rendezvous.Spliced || rendezvous.Ended)
            {
                return;
            }

            rendezvous.Ended = true;
            _tickets.Remove(rendezvous.AskerTicket);
            _tickets.Remove(rendezvous.FarTicket);
            (asker, far) = (rendezvous.AskerSocket, rendezvous.FarSocket);
        }

        rendezvous.Timer?.Dispose();
        if (expired)
        {
            _registry.TicketRefused(expired: true);
            LogExpired(_logger, rendezvous.Asker.Name, rendezvous.Far.Name, asker is null ? rendezvous.Asker.Name : rendezvous.Far.Name);
        }

        asker?.Dispose();
        far?.Dispose();
        rendezvous.Asker.StreamClosed();
        _open.TryRemove(rendezvous, out _);
    }

    [LoggerMessage(EventId = 831, Level = LogLevel.Information, Message = "Spliced a link from node {Asker} to node {Far}")]
    private static partial void LogSpliced(ILogger logger, string asker, string far);

    [LoggerMessage(EventId = 832, Level = LogLevel.Warning, Message = "Splice connection from {Remote} refused: its ticket is not one the relay issued and still waits for (forged, used, or expired)")]
    private static partial void LogTicketRefused(ILogger logger, string remote);

    [LoggerMessage(EventId = 833, Level = LogLevel.Warning, Message = "Splice rendezvous from node {Asker} to node {Far} expired: {Missing} never presented its ticket")]
    private static partial void LogExpired(ILogger logger, string asker, string far, string missing);
}
