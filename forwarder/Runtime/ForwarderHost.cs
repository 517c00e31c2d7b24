using System.Buffers;
using Forwarder.Admin;
using Forwarder.Cluster;
using Forwarder.Configuration;
using Forwarder.Echo;
using Forwarder.L4;
using Forwarder.L7;
using Forwarder.L7.Http2;
using Forwarder.Metrics;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;
using Forwarder.Tunnels;
using Forwarder.Udp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Forwarder.Runtime;

/// <summary>How the process logs: level and text or JSON lines.</summary>
internal sealed record LoggingOptions(LogLevel Level, bool Json);

/// <summary>Composes the generic host that runs the forwarder: transports, runtime, reload watcher and admin.</summary>
internal static partial class ForwarderHost
{
    public static IHost Build(ConfigSource source, LoggingOptions logging)
    {
        var builder = CreateBuilder(logging);

        // The drain bounds itself with the drain timeout of the config running when it starts
        // (reloads may change it), so the host waits for it without a limit of its own.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);

        var tcp = source.Initial.Tcp;
        var transportOptions = new TcpTransportOptions
        {
            NoDelay = tcp.NoDelay,
            ReceiveBufferSize = tcp.ReceiveBufferSize,
            SendBufferSize = tcp.SendBufferSize,
            MaxBufferedBytes = tcp.MaxBufferedBytes,
            BlockSize = tcp.BlockSize,
            WaitForDataBeforeAllocatingBuffer = tcp.WaitForData,
            Mark = source.Initial.Intercept?.Mark,
        };

        // Before the first socket: the transports' descriptor reserve reads the limit once. The
        // derived cap is a first estimate here; the runtime derives it again once started.
        FileDescriptorLimit.Raise();
        var services = builder.Services;
        services.AddSingleton(source);
        services.AddSingleton(new ConnectionBudget(source.Initial.Limits?.MaxConnections ?? FileDescriptorLimit.DeriveMaxConnections()));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<MemoryPool<byte>>(new PinnedBlockMemoryPool(tcp.BlockSize));
        services.AddSingleton(transportOptions);
        services.AddSingleton<IConnectionListenerFactory, TcpListenerFactory>();
        services.AddSingleton(sp => new TcpConnectionFactory(
            sp.GetRequiredService<TcpTransportOptions>(),
            sp.GetRequiredService<MemoryPool<byte>>(),
            sp.GetService<SocketSplicer>(),
            sp.GetRequiredService<ConnectionBudget>()));
        services.AddSingleton<NodeLinks>();
        services.AddSingleton<HostedEndpointServer>();
        services.AddSingleton<HolePunching>();
        services.AddSingleton<TcpPunching>();

        // Streams peers open on QUIC links are served like those on any link; resolved on use, as for the relays.
        services.AddSingleton(sp => new QuicLinkTable(
            sp.GetRequiredService<ConfigSource>(),
            (stream, peer, stopping) => sp.GetRequiredService<HostedEndpointServer>().ServeAsync(stream, peer, LinkPath.DirectQuic, stopping)));

        // Streams relays bring are served by the runtime, which needs the dialer, which needs the relays: resolved on use.
        services.AddSingleton(sp => new RelayLinks(
            sp.GetRequiredService<ConfigSource>(),
            sp.GetRequiredService<TcpConnectionFactory>(),
            (stream, relay, stopping) => sp.GetRequiredService<HostedEndpointServer>().ServeAsync(stream, linkedPeer: null, LinkPath.Relay, stopping, relay),
            sp.GetRequiredService<MemoryPool<byte>>(),
            sp.GetRequiredService<ForwarderMetrics>(),
            sp.GetRequiredService<ILogger<RelayLinks>>()));

        // Links relays splice serve their streams like any link's; resolved on use, as for the relays.
        services.AddSingleton(sp => new SplicedRelayLinks(
            sp.GetRequiredService<ConfigSource>(),
            sp.GetRequiredService<TcpConnectionFactory>(),
            (stream, peer, stopping) => sp.GetRequiredService<HostedEndpointServer>().ServeAsync(stream, peer, LinkPath.RelaySpliced, stopping),
            sp.GetRequiredService<MemoryPool<byte>>(),
            sp.GetRequiredService<ForwarderMetrics>(),
            sp.GetRequiredService<ILogger<SplicedRelayLinks>>()));

        // Upstreams on other nodes are dialled through the links to them, the rest over TCP.
        services.AddSingleton<IConnectionFactory>(sp => new TunnelingConnectionFactory(sp.GetRequiredService<TcpConnectionFactory>(), sp.GetRequiredService<NodeLinks>()));
        services.AddSingleton<ForwarderMetrics>();
        services.AddSingleton<ConnectionTracker>();
        services.AddSingleton<TypeInitFaults>();
        if (tcp.Engine == TcpEngine.Epoll && SocketSplicer.IsSupported)
        {
            // No spare under a cgroup CPU quota: throttling would read as contention (CpuQuota).
            services.AddSingleton(sp =>
            {
                // Resolved now: the splicer's thread tells of a failure at any time, shutdown included.
                var logger = sp.GetRequiredService<ILogger<SocketSplicer>>();
                return new SocketSplicer(
                    SocketEngine.IoThreads(tcp, Environment.ProcessorCount),
                    Math.Max(tcp.BlockSize, 64 * 1024),
                    spillover: tcp.IoThreads is null && Environment.ProcessorCount > 1 && !CpuQuota.IsSet(),
                    meterFailed: ex => LogContentionUnmeasured(logger, ex));
            });
        }

        services.AddSingleton<UpstreamConnector>();
        services.AddSingleton(sp => new TcpProxyHandler(
            sp.GetRequiredService<UpstreamConnector>(),
            sp.GetRequiredService<ConnectionTracker>(),
            sp.GetRequiredService<ILogger<TcpProxyHandler>>(),
            sp.GetService<SocketSplicer>()));
        services.AddSingleton(sp => new HttpConnectionEngine(
            sp.GetService<SocketSplicer>(),
            sp.GetRequiredService<MemoryPool<byte>>(),
            sp.GetRequiredService<TcpTransportOptions>()));
        services.AddSingleton<HttpForwarder>();
        services.AddSingleton<Http2Front>();
        services.AddSingleton<L7.Http2.Proxy.Http2NativeFront>();
        services.AddSingleton<Http1ProxyHandler>();
        services.AddSingleton<AccessLogs>();
        services.AddSingleton<EchoHandler>();
        services.AddSingleton<UdpListeners>();
        services.AddSingleton<ClusterStateStore>();
        services.AddSingleton<ProxyRuntime>();
        services.AddSingleton<KubernetesDiscovery>();
        services.AddSingleton<Dns.DnsServer>();
        services.AddSingleton<AdminServer>();
        services.AddSingleton<NodeLinkListener>();
        services.AddSingleton(sp => new MemoryReclaimer(
            sp.GetRequiredService<ConnectionTracker>(),
            sp.GetRequiredService<ForwarderMetrics>(),
            sp.GetRequiredService<MemoryPool<byte>>(),
            sp.GetService<SocketSplicer>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<MemoryReclaimer>>()));

        // Hosted services stop in reverse order: the admin endpoint goes last, so /readyz
        // reports the drain while it happens.
        services.AddHostedService(sp => sp.GetRequiredService<AdminServer>());
        services.AddHostedService(sp => sp.GetRequiredService<ProxyRuntime>());
        services.AddHostedService(sp => sp.GetRequiredService<KubernetesDiscovery>());
        services.AddHostedService(sp => sp.GetRequiredService<Dns.DnsServer>());
        services.AddHostedService(sp => sp.GetRequiredService<NodeLinkListener>());
        services.AddHostedService(sp => sp.GetRequiredService<RelayLinks>());
        services.AddHostedService(sp => sp.GetRequiredService<SplicedRelayLinks>());
        services.AddHostedService<ConfigWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<MemoryReclaimer>());
        services.AddSingleton<IHostLifetime, ShutdownSignals>();
        return builder.Build();
    }

    /// <summary>A host builder with nothing but this process's console logging.</summary>
    internal static HostApplicationBuilder CreateBuilder(LoggingOptions logging)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(logging.Level);
        if (logging.Json)
        {
            builder.Logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ");
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
                o.UseUtcTimestamp = true;
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            });
        }

        // Microsoft.* framework chatter (Kestrel, hosting) only at warning and above.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        return builder;
    }

    [LoggerMessage(EventId = 135, Level = LogLevel.Warning, Message = "The splicer cannot read its thread's schedstat; its spare thread stays unused")]
    private static partial void LogContentionUnmeasured(ILogger logger, Exception reason);
}
