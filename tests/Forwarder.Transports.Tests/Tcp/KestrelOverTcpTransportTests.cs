using System.Net;
using Forwarder.Transports.Features;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Forwarder.Transports.Tests.Tcp;

/// <summary>The listener factory is a Kestrel transport: an HTTP server can listen through it (as L7 will).</summary>
public sealed class KestrelOverTcpTransportTests
{
    [Fact]
    public async Task Kestrel_ListeningThroughTcpListenerFactory_ServesHttp()
    {
        using var pool = new PinnedBlockMemoryPool();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IConnectionListenerFactory>(new TcpListenerFactory(new TcpTransportOptions(), pool));
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        await using var app = builder.Build();
        // IRawSocketFeature exists only on this transport's connections, not on Kestrel's own.
        app.MapGet("/hello", (HttpContext context) => $"hello over {context.Features.Get<IRawSocketFeature>()?.GetType().Name}");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();

        using var http = new HttpClient { BaseAddress = new Uri(address) };
        var body = await http.GetStringAsync("/hello");

        Assert.Equal("hello over TcpConnection", body);
        await app.StopAsync();
    }
}
