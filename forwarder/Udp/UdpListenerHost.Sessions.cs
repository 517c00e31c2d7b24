using System.Net;
using System.Net.Sockets;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.Udp;

/// <summary>Opening sessions for new client addresses, and ending idle ones.</summary>
internal sealed partial class UdpListenerHost
{
    /// <summary>Opens a session for a client address not seen (or no longer open); null when its datagram is dropped.</summary>
    private async ValueTask<UdpSession?> OpenAsync(SocketAddress from, ListenerModel model)
    {
        var name = model.Config.Name;
        var metrics = _allMetrics.Udp(name);
        if (Volatile.Read(ref _count) >= model.Config.Udp!.MaxSessions)
        {
            metrics.Dropped(UdpDrop.SessionLimit);
            if (_throttle.TryLog(name, "#limit", out var more))
            {
                LogSessionLimit(_logger, name, model.Config.Udp.MaxSessions, more);
            }

            return null;
        }

        var service = model.Service!;
        var client = (IPEndPoint)BoundEndPoint.Create(from);

        // The hash policies pick by client address, as for tcp, so a client keeps its endpoint.
        var index = service.HashesSourceIp ? service.Balancer.Pick(AddressHash.Of(client.Address)) : service.Balancer.Pick();
        if (index < 0)
        {
            service.Metrics.NoneAvailable();
            metrics.Dropped(UdpDrop.NoEndpoint);
            return null;
        }

        var endpoint = service.Endpoints[index];
        Socket upstream;
        try
        {
            upstream = await ConnectAsync(endpoint.Config.EndPoint, UpstreamMark).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            service.Metrics.ConnectFailed(UpstreamConnector.Classify(ex.SocketErrorCode));
            metrics.Dropped(UdpDrop.NoEndpoint);
            if (_throttle.TryLog(name, endpoint.Config.Address, out var more))
            {
                LogOpenFailed(_logger, name, endpoint.Config.Address, ex.SocketErrorCode, more);
            }

            return null;
        }

        // The table keeps its own copy: the receive address is overwritten by the next datagram.
        var key = new SocketAddress(from.Family, from.Size);
        from.Buffer.Span[..from.Size].CopyTo(key.Buffer.Span);
        var session = new UdpSession(this, _socket, key, upstream, service, endpoint, _time, _allMetrics.Listener(name), metrics);
        endpoint.State.Begin();
        service.Metrics.UpstreamOpened();
        metrics.SessionOpened();
        Interlocked.Increment(ref _count);
        _sessions[key] = session;
        using (ExecutionContext.SuppressFlow())
        {
            session.Start();
        }

        return session;
    }

    /// <summary>A socket connected to the endpoint; a host name is resolved now, once per session.</summary>
    private static async ValueTask<Socket> ConnectAsync(EndPoint endPoint, int? mark)
    {
        if (endPoint is DnsEndPoint dns)
        {
            var addresses = await System.Net.Dns.GetHostAddressesAsync(dns.Host).ConfigureAwait(false);
            endPoint = addresses.Length > 0
                ? new IPEndPoint(addresses[0], dns.Port)
                : throw new SocketException((int)SocketError.HostNotFound);
        }

        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (mark is { } value)
            {
                Transports.Tcp.SocketMark.Set(socket, value);
            }

            // Connected, the kernel delivers only this endpoint's datagrams to the socket, and
            // reports its ICMP unreachable errors there.
            socket.Connect(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs on the sweep timer: ends the sessions with no datagram either way for idleTimeout.</summary>
    private void EndIdleSessions()
    {
        var idleTimeout = Model.Config.Udp!.IdleTimeout;
        foreach (var session in _sessions.Values)
        {
            if (session.Idle >= idleTimeout)
            {
                Close(session, UdpSessionEnd.Idle);
            }
        }
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Listener {Listener} (udp) receiving on {EndPoint}")]
    private static partial void LogListening(ILogger logger, string listener, EndPoint endPoint);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Information, Message = "Listener {Listener} (udp) stopped receiving on {EndPoint}; its sessions ended")]
    private static partial void LogStopped(ILogger logger, string listener, EndPoint endPoint);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Listener {Listener}: udp.maxSessions ({Max}) sessions are open; datagrams from new client addresses are dropped ({Suppressed} more since the last such line)")]
    private static partial void LogSessionLimit(ILogger logger, string listener, int max, long suppressed);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Warning, Message = "Listener {Listener}: no socket to endpoint {Endpoint} could be opened ({Error}); the datagram is dropped ({Suppressed} more since the last such line)")]
    private static partial void LogOpenFailed(ILogger logger, string listener, string endpoint, SocketError error, long suppressed);

    [LoggerMessage(EventId = 1205, Level = LogLevel.Warning, Message = "Listener {Listener}: udp receive failed ({Error}); receiving goes on")]
    private static partial void LogReceiveFailed(ILogger logger, string listener, SocketError error);
}
