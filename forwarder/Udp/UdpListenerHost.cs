using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.Udp;

/// <summary>
/// One bound udp listener: a single receive loop reads every client datagram into one buffer,
/// finds the client's session by its address (opening one, with an endpoint from the service's
/// balancer, for a new address) and sends the datagram on. A timer ends sessions idle past the
/// listener's idleTimeout. Nothing on the per-datagram path allocates: the receive address is
/// reused, and the session table is keyed by <see cref="SocketAddress"/>, which compares by value.
/// </summary>
internal sealed partial class UdpListenerHost
{
    /// <summary>Receive buffer size: the largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6) fits whole.</summary>
    public const int MaxDatagram = 64 * 1024;

    private readonly Socket _socket;
    private readonly ConcurrentDictionary<SocketAddress, UdpSession> _sessions = new();
    private readonly ForwarderMetrics _allMetrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogThrottle _throttle = new();
    private readonly ITimer _sweep;
    private ListenerModel _model;
    private Task _receiving = Task.CompletedTask;
    private int _count;
    private int _upstreamMark;

    private UdpListenerHost(Socket socket, ListenerModel model, ForwarderMetrics metrics, TimeProvider time, ILogger logger)
    {
        _socket = socket;
        _model = model;
        _allMetrics = metrics;
        _time = time;
        _logger = logger;
        BoundEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _sweep = time.CreateTimer(static state => ((UdpListenerHost)state!).EndIdleSessions(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The bound address (the port resolved when 0 was configured); also the template client addresses are read with.</summary>
    public IPEndPoint BoundEndPoint { get; }

    public ListenerModel Model
    {
        get => Volatile.Read(ref _model);
        set
        {
            Volatile.Write(ref _model, value);
            ArmSweep();
        }
    }

    /// <summary>SO_MARK for the sockets new sessions open to endpoints (the intercept section's mark); null for none.</summary>
    public int? UpstreamMark
    {
        get => Volatile.Read(ref _upstreamMark) is var mark and not 0 ? mark : null;
        set => Volatile.Write(ref _upstreamMark, value ?? 0);
    }

    /// <summary>Sessions open now.</summary>
    public int SessionCount => Volatile.Read(ref _count);

    /// <summary>Binds the listener's address; nothing is received until <see cref="Start"/>.</summary>
    /// <param name="endPoint">Where to bind: the listener's address when null.</param>
    /// <param name="shared">Sets SO_REUSEADDR, so a second socket can bind another address of the same port.</param>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    public static UdpListenerHost Bind(ListenerModel model, ForwarderMetrics metrics, TimeProvider time, ILogger logger, IPEndPoint? endPoint = null, bool shared = false)
    {
        endPoint ??= model.Config.EndPoint;
        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = !shared;
            }

            if (shared)
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            socket.Bind(endPoint);
            return new UdpListenerHost(socket, model, metrics, time, logger);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Start()
    {
        ArmSweep();
        using (ExecutionContext.SuppressFlow())
        {
            _receiving = ReceiveLoopAsync();
        }

        LogListening(_logger, Model.Config.Name, BoundEndPoint);
    }

    /// <summary>Closes a listener that was bound but never started (its config was not applied).</summary>
    public void Abandon()
    {
        _sweep.Dispose();
        _socket.Dispose();
    }

    /// <summary>Unbinds and ends every session.</summary>
    public async Task StopAsync(UdpSessionEnd reason)
    {
        await _sweep.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _receiving.ConfigureAwait(false);
        foreach (var session in _sessions.Values)
        {
            Close(session, reason);
        }

        await Task.WhenAll(_sessions.Values.Select(s => s.Completion)).ConfigureAwait(false);
        LogStopped(_logger, Model.Config.Name, BoundEndPoint);
    }

    /// <summary>Ends the sessions whose endpoint the current model's service no longer has (a reload removed or changed it).</summary>
    public void EndSessionsOfRemovedEndpoints()
    {
        var service = Model.Service!;
        foreach (var session in _sessions.Values)
        {
            var endpoint = session.Endpoint.Config;
            if (session.Service.Config.Name != service.Config.Name
                || !service.Endpoints.Any(e => e.Config.Address == endpoint.Address && e.Config.EndPoint.Equals(endpoint.EndPoint)))
            {
                Close(session, UdpSessionEnd.Reload);
            }
        }
    }

    /// <summary>Ends a session (once, whoever asks first) and takes it out of the table.</summary>
    public void Close(UdpSession session, UdpSessionEnd reason)
    {
        if (!session.TryClose())
        {
            return;
        }

        _sessions.TryRemove(new KeyValuePair<SocketAddress, UdpSession>(session.Client, session));
        Interlocked.Decrement(ref _count);
        session.Endpoint.State.End();
        session.Service.Metrics.UpstreamClosed();
        _allMetrics.Udp(Model.Config.Name).SessionEnded(reason);
    }

    /// <summary>Idle sessions are looked for four times per idleTimeout (at most once a second), so one lives at most a quarter longer.</summary>
    private void ArmSweep()
    {
        var period = TimeSpan.FromMilliseconds(Math.Clamp(Model.Config.Udp!.IdleTimeout.TotalMilliseconds / 4, 5, 1000));
        _sweep.Change(period, period);
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(MaxDatagram, pinned: true);
        var from = new SocketAddress(_socket.AddressFamily);
        while (true)
        {
            int length;
            try
            {
                from.Size = from.Buffer.Length;
                length = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.OperationAborted)
            {
                return;
            }
            catch (SocketException ex)
            {
                // An error queued on the socket belongs to no datagram in hand; the next is read.
                LogReceiveFailed(_logger, Model.Config.Name, ex.SocketErrorCode);
                continue;
            }

            var model = Model;
            if (!_sessions.TryGetValue(from, out var session))
            {
                session = await OpenAsync(from, model).ConfigureAwait(false);
                if (session is null)
                {
                    continue;
                }
            }

            if (!await session.SendAsync(buffer.AsMemory(0, length)).ConfigureAwait(false))
            {
                _allMetrics.Udp(model.Config.Name).Dropped(UdpDrop.SendFailed);
            }
        }
    }
}
