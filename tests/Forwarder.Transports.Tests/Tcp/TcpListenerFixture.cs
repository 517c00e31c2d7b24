using System.Net;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Tcp;

/// <summary>
/// A TCP transport listener on a free loopback port, bound before each test and closed after it,
/// with the options and memory pool the test's connections share.
/// </summary>
public abstract class TcpListenerFixture : IAsyncLifetime
{
    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private protected TcpTransportOptions Options { get; } = new();

    private protected PinnedBlockMemoryPool Pool { get; } = new(4096);

    private protected IConnectionListener Listener { get; private set; } = null!;

    public async Task InitializeAsync()
        => Listener = await new TcpListenerFactory(Options, Pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        await Listener.DisposeAsync();
        Pool.Dispose();
    }
}
