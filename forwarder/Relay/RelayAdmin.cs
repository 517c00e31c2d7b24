using Forwarder.Admin;
using Forwarder.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <summary>The relay's admin endpoint: /healthz, /metrics and /nodes (the registered node names), on its own Kestrel server.</summary>
internal sealed partial class RelayAdmin(RelayConfig config, RelayRegistry registry, ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;

    public Uri? Address { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (config.Admin is not { } admin)
        {
            return;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(admin.EndPoint));
        var app = builder.Build();
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/metrics", () => Results.Text(RelayMetricsWriter.Write(registry), PrometheusWriter.ContentType));
        app.MapGet("/nodes", () => Results.Text(string.Concat(registry.Nodes.Where(n => n.Session is not null).Select(n => n.Name + "\n"))));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        Address = address is null ? null : new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        LogListening(loggerFactory.CreateLogger<RelayAdmin>(), Address);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 811, Level = LogLevel.Information, Message = "Relay admin endpoint on {Address} (/healthz /metrics /nodes)")]
    private static partial void LogListening(ILogger logger, Uri? address);
}
