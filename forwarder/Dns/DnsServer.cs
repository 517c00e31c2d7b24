using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Forwarder.Cluster;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Dns;

/// <summary>
/// The service DNS server of a <c>dns</c> section, on UDP and TCP at one address. Cluster names
/// are answered in the receive loop from pooled buffers; the rest go upstream on their own task,
/// bounded in number, so a slow upstream never holds up a cluster answer.
/// </summary>
internal sealed partial class DnsServer : IHostedService, IAsyncDisposable
{
    /// <summary>Upstream queries in flight at once; further ones get no answer (the client retries).</summary>
    private const int MaxForwards = 4096;

    private const int ReceiveBuffer = 4096;

    private readonly DnsConfig? _config;
    private readonly ClusterStateStore _store;
    private readonly DnsMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<DnsServer> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Task, bool> _tasks = new();
    private DnsHandler? _handler;
    private Socket? _udp;
    private Socket? _tcp;
    private int _forwards;

    public DnsServer(ConfigSource source, ClusterStateStore store, ForwarderMetrics metrics, TimeProvider time, ILogger<DnsServer> logger)
    {
        _config = source.Initial.Dns;
        _store = store;
        _metrics = metrics.Dns;
        _time = time;
        _logger = logger;
    }

    /// <summary>Where it answers (the port bound when the config says 0); null without a dns section.</summary>
    public IPEndPoint? EndPoint { get; private set; }

    /// <summary>The upstream resolvers in the order first tried.</summary>
    public IReadOnlyList<IPEndPoint> Upstreams { get; private set; } = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_config is not { } config)
        {
            return Task.CompletedTask;
        }

        Upstreams = config.Upstreams.Count > 0 ? config.Upstreams : ResolvConf.Nameservers(ResolvConf.DefaultPath, config.EndPoint);
        var resolvers = new UpstreamResolvers(Upstreams, config.UpstreamTimeout, _metrics, _time);
        var forwarding = new DnsForwarding(resolvers, new DnsCache(config.CacheSize, _time, _metrics), _metrics, _time);
        _handler = new DnsHandler(new ClusterZoneSource(_store, config.Domain), forwarding, _metrics, (uint)config.Ttl.TotalSeconds);
        Bind(config.EndPoint);
        _metrics.Enable();
        var loops = Math.Clamp(Environment.ProcessorCount, 1, 4);
        for (var i = 0; i < loops; i++)
        {
            Track(ReceiveUdpAsync(_udp!));
        }

        Track(AcceptTcpAsync(_tcp!));
        LogListening(_logger, EndPoint!, config.Domain, Upstreams.Count == 0 ? "none (other names get SERVFAIL)" : string.Join(", ", Upstreams));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _udp?.Dispose();
        _tcp?.Dispose();
        await Task.WhenAll(_tasks.Keys).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>UDP first, then TCP on the same port; with port 0, a port free for both.</summary>
    private void Bind(IPEndPoint endPoint)
    {
        for (var attempt = 1; ; attempt++)
        {
            _udp = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _tcp = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
                {
                    _udp.DualMode = true;
                    _tcp.DualMode = true;
                }

                _udp.Bind(endPoint);
                _tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                _tcp.Bind(new IPEndPoint(endPoint.Address, ((IPEndPoint)_udp.LocalEndPoint!).Port));
                _tcp.Listen(512);
                EndPoint = (IPEndPoint)_udp.LocalEndPoint!;
                return;
            }
            catch (SocketException ex)
            {
                _udp.Dispose();
                _tcp.Dispose();

                // The UDP port picked may be taken for TCP: pick another.
                if (endPoint.Port != 0 || attempt == 20)
                {
                    throw new ListenerBindException($"dns.listen {endPoint}: {ex.Message}", ex);
                }
            }
        }
    }

    private async Task ReceiveUdpAsync(Socket socket)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReceiveBuffer);
        var response = ArrayPool<byte>.Shared.Rent(DnsHeader.EdnsUdpSize);
        var name = new byte[DnsName.MaxLength];
        var from = new SocketAddress(socket.AddressFamily);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                int length;
                try
                {
                    length = await socket.ReceiveFromAsync(buffer, SocketFlags.None, from, _stopping.Token).ConfigureAwait(false);
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize)
                {
                    // An ICMP error from an earlier reply, or a datagram larger than any query: neither stops the loop.
                    continue;
                }

                var answered = _handler!.Answer(buffer.AsSpan(0, length), response, name, udp: true, out var query, out var forward);
                if (answered > 0)
                {
                    await SendUdpAsync(socket, response.AsMemory(0, answered), from).ConfigureAwait(false);
                }
                else if (forward)
                {
                    StartForward(socket, buffer.AsSpan(0, length), name, query, from);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || (ex is SocketException && _stopping.IsCancellationRequested))
        {
            // Stopping.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(response);
        }
    }

    private void StartForward(Socket socket, ReadOnlySpan<byte> message, ReadOnlySpan<byte> name, DnsQuery query, SocketAddress from)
    {
        if (Interlocked.Increment(ref _forwards) > MaxForwards)
        {
            Interlocked.Decrement(ref _forwards);
            _metrics.Drop();
            return;
        }

        var client = new SocketAddress(from.Family, from.Size);
        from.Buffer.CopyTo(client.Buffer);
        Track(ForwardUdpAsync(socket, message.ToArray(), DnsHandler.Key(name, query), query, client));
    }

    private async Task ForwardUdpAsync(Socket socket, byte[] message, byte[] key, DnsQuery query, SocketAddress client)
    {
        var response = ArrayPool<byte>.Shared.Rent(DnsHeader.EdnsUdpSize);
        try
        {
            var (length, result) = await _handler!.Forwarding.ResolveAsync(key, query, message, response, query.UdpLimit, _stopping.Token).ConfigureAwait(false);
            _metrics.Answered(query.Type, result);
            await SendUdpAsync(socket, response.AsMemory(0, length), client).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException && _stopping.IsCancellationRequested)
        {
            // Stopping.
        }
        catch (Exception ex)
        {
            LogForwardFailed(_logger, ex.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(response);
            Interlocked.Decrement(ref _forwards);
        }
    }

    private async ValueTask SendUdpAsync(Socket socket, ReadOnlyMemory<byte> datagram, SocketAddress to)
    {
        try
        {
            await socket.SendToAsync(datagram, SocketFlags.None, to, _stopping.Token).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            // The client is gone or the buffer is full: like a lost datagram, the client asks again.
        }
    }

    /// <summary>Keeps the task until it ends, so stopping waits for it; its exceptions are handled inside.</summary>
    private void Track(Task task)
    {
        _tasks.TryAdd(task, true);
        _ = task.ContinueWith(static (t, state) => ((ConcurrentDictionary<Task, bool>)state!).TryRemove(t, out _), _tasks, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    [LoggerMessage(EventId = 1500, Level = LogLevel.Information, Message = "DNS answering on {EndPoint} (udp and tcp) for {Domain}; other names go to {Upstreams}")]
    private static partial void LogListening(ILogger logger, IPEndPoint endPoint, string domain, string upstreams);

    [LoggerMessage(EventId = 1501, Level = LogLevel.Warning, Message = "DNS: forwarding a query failed: {Reason}")]
    private static partial void LogForwardFailed(ILogger logger, string reason);
}
