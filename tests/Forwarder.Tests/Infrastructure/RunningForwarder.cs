using System.Net;
using Forwarder.Admin;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tests.Infrastructure;

/// <summary>A forwarder host running in the test process on a config file in a temp directory.</summary>
internal sealed class RunningForwarder : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly string _directory;
    private bool _stopped;

    private RunningForwarder(IHost host, string directory, string configPath)
    {
        _host = host;
        _directory = directory;
        ConfigPath = configPath;
    }

    public string ConfigPath { get; }

    public ProxyRuntime Runtime => _host.Services.GetRequiredService<ProxyRuntime>();

    public ForwarderMetrics Metrics => _host.Services.GetRequiredService<ForwarderMetrics>();

    public Uri AdminAddress => _host.Services.GetRequiredService<AdminServer>().Address ?? throw new InvalidOperationException("No admin endpoint configured.");

    public static async Task<RunningForwarder> StartAsync(string yaml)
    {
        var directory = Directory.CreateTempSubdirectory("forwarder-test-").FullName;
        var path = Path.Combine(directory, "forwarder.yaml");
        await File.WriteAllTextAsync(path, yaml);
        return await StartOnAsync(directory, path);
    }

    /// <summary>Runs on a config file the caller laid out in <paramref name="directory"/>, which is deleted on dispose.</summary>
    public static async Task<RunningForwarder> StartOnAsync(string directory, string path)
    {
        var host = ForwarderHost.Build(new ConfigSource(path, ConfigLoader.LoadFile(path)), new LoggingOptions(LogLevel.Warning, Json: false));
        await host.StartAsync();
        return new RunningForwarder(host, directory, path);
    }

    public IPEndPoint EndPoint(string listener) => (IPEndPoint)Runtime.BoundEndPoints[listener];

    public T Service<T>()
        where T : notnull => _host.Services.GetRequiredService<T>();

    /// <summary>Rewrites the config file and reloads it directly (the file watcher has its own test).</summary>
    public async Task<bool> ReloadAsync(string yaml)
    {
        await File.WriteAllTextAsync(ConfigPath, yaml);
        return await Runtime.ReloadAsync(CancellationToken.None);
    }

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _host.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _host.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
