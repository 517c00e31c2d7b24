using System.Net;
using System.Text.Json;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Admin;

/// <summary>
/// The admin HTTP endpoint (/healthz, /readyz, /config, /metrics) on its own small Kestrel
/// server, so it is reachable whatever state the proxy's listeners are in.
/// </summary>
internal sealed partial class AdminServer(
    ProxyRuntime runtime,
    ForwarderMetrics metrics,
    ConnectionTracker tracker,
    ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);
    private readonly MetricsEndpoint _metricsEndpoint = new(metrics, runtime, tracker);
    private WebApplication? _app;

    /// <summary>Where the admin endpoint listens, once started (the port is resolved if 0 was configured).</summary>
    public Uri? Address { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (runtime.Config.Admin is not { } admin)
        {
            return;
        }

        // Empty, not slim: the slim builder reads appsettings.json from the working directory and
        // watches it for changes, the directory's whole tree included (an inotify watch for every
        // subdirectory, 1,100 from a checkout, and a thread), for settings nothing here reads.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(admin.EndPoint));
        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // A handler whose type could not initialize fails on every call from now on.
                runtime.Faults.Observe(ex);
                throw;
            }
        });
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => runtime.Ready ? Results.Text("ready\n") : Results.Text(NotReadyReason(runtime), statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapGet("/metrics", _metricsEndpoint.HandleAsync);
        app.MapGet("/config", async context =>
        {
            context.Response.ContentType = "application/json; charset=utf-8";
            await using var json = new Utf8JsonWriter(context.Response.BodyWriter, new JsonWriterOptions { Indented = true });
            ConfigJsonWriter.Write(json, runtime);
        });
        app.MapPost("/reload", async (CancellationToken ct) => await runtime.ReloadAsync(ct).ConfigureAwait(false)
            ? Results.Text("reloaded\n")
            : Results.Text(string.Join('\n', runtime.Status.Errors) + "\n", statusCode: StatusCodes.Status422UnprocessableEntity));

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // Kestrel's "Failed to bind": the process exits 3 with this line, as for a proxy listener.
            await app.DisposeAsync().ConfigureAwait(false);
            throw new ListenerBindException($"{runtime.Config.Source}: admin.listen {admin.Listen}: cannot listen: {ex.InnerException?.Message ?? ex.Message}", ex);
        }

        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        Address = address is null ? null : new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        var logger = loggerFactory.CreateLogger<AdminServer>();
        LogListening(logger, Address);
        if (Address is not null && await AdminWarmup.RunAsync(new IPEndPoint(IPAddress.Parse(Address.Host), Address.Port), cancellationToken).ConfigureAwait(false) is { } failed)
        {
            LogWarmupFailed(logger, failed.Message);
        }
    }

    private static string NotReadyReason(ProxyRuntime runtime) => runtime.Faults.Broken is { } type
        ? $"broken: type {type} failed to initialize; restart the process\n"
        : runtime.Draining ? "draining\n" : runtime.ShuttingDown ? "shutting down\n" : "starting\n";

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            // The host waits without a limit (the drain bounds itself); a scrape in progress gets a few seconds.
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bounded.CancelAfter(StopGrace);
            await _app.StopAsync(bounded.Token).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }

        _metricsEndpoint.Dispose();
    }

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Admin endpoint on {Address} (/healthz /readyz /config /metrics, POST /reload)")]
    private static partial void LogListening(ILogger logger, Uri? address);

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Admin endpoint warm-up request failed: {Error}")]
    private static partial void LogWarmupFailed(ILogger logger, string error);
}
