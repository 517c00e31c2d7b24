using System.Buffers;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Forwarder.Relay;

/// <summary>Composes the host <c>forwarder relay</c> runs: the relay listener, its registry and its admin endpoint.</summary>
internal static class RelayHost
{
    /// <param name="time">The clock of the relay's token, hold and splice timeouts: the system's unless a test drives it.</param>
    public static IHost Build(RelayConfig config, LoggingOptions logging, TimeProvider? time = null)
    {
        var builder = ForwarderHost.CreateBuilder(logging);
        var services = builder.Services;
        var transport = new TcpTransportOptions();
        services.AddSingleton(config);
        services.AddSingleton(time ?? TimeProvider.System);
        services.AddSingleton(transport);
        services.AddSingleton<MemoryPool<byte>>(new PinnedBlockMemoryPool(transport.BlockSize));
        services.AddSingleton<IConnectionListenerFactory, TcpListenerFactory>();
        services.AddSingleton<RelayRegistry>();
        services.AddSingleton<RelayServer>();
        services.AddSingleton<RelayAdmin>();
        services.AddHostedService(sp => sp.GetRequiredService<RelayAdmin>());
        services.AddHostedService(sp => sp.GetRequiredService<RelayServer>());
        return builder.Build();
    }
}
