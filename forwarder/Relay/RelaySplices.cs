using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Forwarder.Configuration;
using Forwarder.Transports.Tcp;
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

    /// <summary>How long a connection may take, from its accept, to send its whole ticket.</summary>
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Connections still sending their tickets, at most: anyone can connect here. They cost no
    /// thread: the accepting thread polls them beside the listener (a plain poll, so that .NET's
    /// socket engine never watches a socket the splicer takes over), and each has until
    /// <see cref="HelloTimeout"/> after its accept whatever it trickles.
    /// </summary>
    private const int MaxHellos = 256;

    /// <summary>How long one poll waits, so that deadlines and a stop are seen this often.</summary>
    private const int PollMicroseconds = 100_000;

    /// <summary>
    /// How long the listener is left unpolled after an accept failed for want of descriptors
    /// (EMFILE, ENFILE, ENOBUFS): the connection stays in the backlog and the poll would find it
    /// again at once, spinning a core, as Kestrel and HAProxy back off too.
    /// </summary>
    private const long AcceptBackoffMilliseconds = 500;

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

    /// <summary>Accepts connections and reads their tickets, all on this one thread, until the relay stops.</summary>
    private void AcceptLoop()
    {
        Dictionary<Socket, Hello> hellos = [];
        List<Socket> readable = [];
        long backoffUntil = 0;
        var starved = false;
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                readable.Clear();
                if (Environment.TickCount64 >= backoffUntil)
                {
                    readable.Add(_listener);
                }

                readable.AddRange(hellos.Keys);
                try
                {
                    if (readable.Count == 0)
                    {
                        // Backing off with no hello waiting: Select wants a socket to watch.
                        _stopping.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(AcceptBackoffMilliseconds));
                        continue;
                    }

                    Socket.Select(readable, null, null, PollMicroseconds);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    if (_stopping.IsCancellationRequested)
                    {
                        return;
                    }

                    continue;
                }

                foreach (var socket in readable)
                {
                    if (socket == _listener)
                    {
                        var error = Accept(hellos);
                        if (error is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
                        {
                            backoffUntil = Environment.TickCount64 + AcceptBackoffMilliseconds;
                            if (!starved)
                            {
                                starved = true;
                                LogAcceptStarved(_logger, EndPoint, error);
                            }
                        }
                        else if (error is SocketError.Success && starved)
                        {
                            starved = false;
                            LogAcceptRecovered(_logger, EndPoint);
                        }
                    }
                    else if (hellos.TryGetValue(socket, out var hello) && hello.Receive() is not Hello.Progress.Partial)
                    {
                        hellos.Remove(socket);
                        Present(socket, hello.Ticket);
                    }
                }

                var now = Environment.TickCount64;
                foreach (var (socket, hello) in hellos)
                {
                    if (now >= hello.Deadline)
                    {
                        hellos.Remove(socket);
                        Present(socket, ticket: null);
                    }
                }
            }
        }
        finally
        {
            foreach (var socket in hellos.Keys)
            {
                socket.Dispose();
            }
        }
    }

    /// <summary>Accepts the connection the poll found; the accept's error (Success when it took one).</summary>
    private SocketError Accept(Dictionary<Socket, Hello> hellos)
    {
        // As the listen port: a few descriptors stay with the runtime, which aborts the process
        // when it finds none, and no connection is taken until they can be held again.
        if (!FileDescriptorReserve.TryHold())
        {
            return SocketError.TooManyOpenSockets;
        }

        Socket socket;
        try
        {
            // The poll found a connection waiting: this does not block.
            socket = _listener.Accept();
        }
        catch (SocketException ex)
        {
            if (ex.SocketErrorCode is SocketError.TooManyOpenSockets)
            {
                FileDescriptorReserve.Release();
            }

            return ex.SocketErrorCode;
        }
        catch (ObjectDisposedException)
        {
            return SocketError.OperationAborted;
        }

        FileDescriptorReserve.Check(socket);

        if (hellos.Count >= MaxHellos)
        {
            _registry.TicketRefused(expired: false);
            socket.Dispose();
            return SocketError.Success;
        }

        // Small TLS records (a request, a window update) must not wait for Nagle to send them.
        socket.NoDelay = true;
        hellos[socket] = new Hello(socket, Environment.TickCount64 + (long)HelloTimeout.TotalMilliseconds);
        return SocketError.Success;
    }

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

    /// <summary>
    /// Closes spliced links that carried nothing for the idle timeout (a node gone without a FIN
    /// or RST, whose keep-alives stopped), or that one side half-closed and nothing crossed since
    /// for the half-close timeout (the open half may still be sending its last bytes): each holds
    /// two sockets here and one of the asker's streams.
    /// </summary>
    private void Sweep()
    {
        // A timer callback may start again while the last still runs (a starved thread pool):
        // HalfClosedFor and TimedOut belong to one sweep at a time, and a late tick just skips.
        if (Interlocked.Exchange(ref _sweeping, 1) != 0)
        {
            return;
        }

        try
        {
            var now = _time.GetTimestamp();
            foreach (var rendezvous in _open.Keys)
            {
                if (rendezvous.Splice is not { } splice || rendezvous.TimedOut)
                {
                    continue;
                }

                // Half-closed first: a link left half-closed is closed for that, the more telling
                // reason, even when it has also been quiet longer than the idle timeout.
                var idle = _time.GetElapsedTime(rendezvous.LastActive, now);
                var halfClosed = TimeSpan.FromTicks(Math.Min(idle.Ticks, rendezvous.HalfClosedFor(splice.HalfClosed, now).Ticks));
                if (halfClosed >= _config.HalfCloseTimeout)
                {
                    rendezvous.TimedOut = true;
                    _registry.SpliceTimedOut(halfClosed: true);
                    LogHalfClosedClosed(_logger, rendezvous.Asker.Name, rendezvous.Far.Name, halfClosed);
                    splice.Abort();
                }
                else if (idle >= _config.IdleTimeout)
                {
                    rendezvous.TimedOut = true;
                    _registry.SpliceTimedOut(halfClosed: false);
                    LogIdleClosed(_logger, rendezvous.Asker.Name, rendezvous.Far.Name, idle);
                    splice.Abort();
                }
            }
        }
        catch (Exception ex)
        {
            // An exception out of a timer callback would end the process: this sweep is lost, the next one runs.
            LogSweepFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
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

    [LoggerMessage(EventId = 839, Level = LogLevel.Error, Message = "Splice port {EndPoint} cannot accept ({Error}: out of file descriptors?); it tries again every half second (840 says when it can)")]
    private static partial void LogAcceptStarved(ILogger logger, EndPoint endPoint, SocketError error);

    [LoggerMessage(EventId = 840, Level = LogLevel.Information, Message = "Splice port {EndPoint} accepts connections again")]
    private static partial void LogAcceptRecovered(ILogger logger, EndPoint endPoint);

    [LoggerMessage(EventId = 841, Level = LogLevel.Error, Message = "Sweep over the spliced links' timeouts failed; the next one runs as usual")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 836, Level = LogLevel.Information, Message = "Spliced link from node {Asker} to node {Far} closed: nothing crossed it for {Idle} (relay.spliceIdleTimeout)")]
    private static partial void LogIdleClosed(ILogger logger, string asker, string far, TimeSpan idle);

    [LoggerMessage(EventId = 837, Level = LogLevel.Information, Message = "Spliced link from node {Asker} to node {Far} closed: half-closed, with nothing crossing it, for {HalfClosed} (relay.spliceHalfCloseTimeout)")]
    private static partial void LogHalfClosedClosed(ILogger logger, string asker, string far, TimeSpan halfClosed);

    /// <summary>Two nodes' halves of one spliced link, and its bytes counted for both.</summary>
    internal sealed class Rendezvous(RelayNode asker, RelayNode far, string askerTicket, string farTicket, TimeProvider time) : ISpliceObserver
    {
        public RelayNode Asker { get; } = asker;

        public RelayNode Far { get; } = far;

        public string AskerTicket { get; } = askerTicket;

        public string FarTicket { get; } = farTicket;

        public Socket? AskerSocket { get; set; }

        public Socket? FarSocket { get; set; }

        /// <summary>Both halves came; the splice owns the sockets from then on.</summary>
        public bool Spliced { get; set; }

        /// <summary>Expired or cancelled before both came.</summary>
        public bool Ended { get; set; }

        public ITimer? Timer { get; set; }

        /// <summary>
        /// The running splice, once there is one. The sweep reads it on another thread, so it is
        /// published as one reference: a Nullable struct can be read torn (HasValue set, the
        /// struct's reference not yet), and using that would throw in the sweep's timer.
        /// </summary>
        public SplicedConnection? Splice => Volatile.Read(ref _splice)?.Value;

        /// <summary>The splice, once there is one.</summary>
        public Task Done { get; set; } = Task.CompletedTask;

        /// <summary>The relay's clock's timestamp when a byte last crossed the splice (or it started).</summary>
        public long LastActive => Volatile.Read(ref _lastActive);

        /// <summary>The sweep closed it for a timeout: it is not closed twice.</summary>
        public bool TimedOut { get; set; }

        private StrongBox<SplicedConnection>? _splice;
        private long _lastActive;
        private long _halfClosedSince;

        public void Started(SplicedConnection splice) => Volatile.Write(ref _splice, new StrongBox<SplicedConnection>(splice));

        public void Touch() => Volatile.Write(ref _lastActive, time.GetTimestamp());

        /// <summary>How long the splice has been seen half-closed by the sweep (on its thread only), zero when it is not.</summary>
        public TimeSpan HalfClosedFor(bool halfClosed, long now)
        {
            if (!halfClosed)
            {
                _halfClosedSince = 0;
                return TimeSpan.Zero;
            }

            if (_halfClosedSince == 0)
            {
                _halfClosedSince = now;
            }

            return time.GetElapsedTime(_halfClosedSince, now);
        }

        void ISpliceObserver.Forwarded(bool toUpstream, int bytes)
        {
            Touch();
            var (from, to) = toUpstream ? (Asker, Far) : (Far, Asker);
            from.AddFrom(bytes);
            to.AddTo(bytes);
        }
    }

    /// <summary>A connection still sending its magic and ticket.</summary>
    private sealed class Hello(Socket socket, long deadline)
    {
        private readonly byte[] _bytes = new byte[4 + TicketLength];
        private int _read;

        public enum Progress
        {
            Partial,
            Done,
        }

        /// <summary>Environment.TickCount64 by which the whole hello must be in.</summary>
        public long Deadline { get; } = deadline;

        /// <summary>The ticket, once the whole hello came and starts with the magic; else null.</summary>
        public string? Ticket { get; private set; }

        /// <summary>Takes what the poll found waiting (never blocks); Done once the hello is whole, closed, or failed.</summary>
        public Progress Receive()
        {
            var received = socket.Receive(_bytes, _read, _bytes.Length - _read, SocketFlags.None, out var error);
            if (error != SocketError.Success || received == 0)
            {
                return Progress.Done;
            }

            _read += received;
            if (_read < _bytes.Length)
            {
                return Progress.Partial;
            }

            Ticket = _bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic) ? Convert.ToHexStringLower(_bytes.AsSpan(Magic.Length)) : null;
            return Progress.Done;
        }
    }
}
