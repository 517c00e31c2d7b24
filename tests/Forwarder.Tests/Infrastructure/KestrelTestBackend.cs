using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tests.Infrastructure;

/// <summary>An ASP.NET Core server on a free loopback port, speaking only HTTP/2 (h2c), for upstreams a test scripts with a handler.</summary>
internal sealed class KestrelTestBackend(WebApplication app, int port) : IAsyncDisposable
{
    public int Port => port;

    public static async Task<KestrelTestBackend> StartHttp2Async(RequestDelegate handler, Action<KestrelServerOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2);
            configure?.Invoke(k);
        });
        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync();
        return new KestrelTestBackend(app, new Uri(app.Urls.Single()).Port);
    }

    public ValueTask DisposeAsync() => app.DisposeAsync();
}
