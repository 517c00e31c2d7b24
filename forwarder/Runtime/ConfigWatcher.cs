using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// Reloads the config when its file changes (editors that write in place, and those that write
/// a new file and rename it over the old one, as Kubernetes ConfigMaps do) or on SIGHUP. Bursts
/// of file events are coalesced; a change that leaves the bytes as they were is ignored.
/// </summary>
internal sealed partial class ConfigWatcher(ProxyRuntime runtime, ILogger<ConfigWatcher> logger) : BackgroundService
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (runtime.ConfigPath is not { } path)
        {
            return;
        }

        var fullPath = Path.GetFullPath(path);
        var signal = new SemaphoreSlim(0);
        var forced = 0;
        using var watcher = new FileSystemWatcher(Path.GetDirectoryName(fullPath)!, Path.GetFileName(fullPath))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        FileSystemEventHandler changed = (_, _) => signal.Release();
        watcher.Changed += changed;
        watcher.Created += changed;
        watcher.Renamed += (_, _) => signal.Release();
        watcher.EnableRaisingEvents = true;
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            Interlocked.Exchange(ref forced, 1);
            signal.Release();
        });

        var lastHash = Hash(fullPath);
        LogWatching(logger, fullPath);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await signal.WaitAsync(stoppingToken).ConfigureAwait(false);
                await Task.Delay(Debounce, stoppingToken).ConfigureAwait(false);
                while (signal.CurrentCount > 0)
                {
                    await signal.WaitAsync(stoppingToken).ConfigureAwait(false);
                }

                var hash = Hash(fullPath);
                if (Interlocked.Exchange(ref forced, 0) == 0 && hash is not null && hash.AsSpan().SequenceEqual(lastHash))
                {
                    continue;
                }

                lastHash = hash;
                await runtime.ReloadAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private static byte[]? Hash(string path)
    {
        try
        {
            return SHA256.HashData(File.ReadAllBytes(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "Watching {Path} for changes (SIGHUP also reloads)")]
    private static partial void LogWatching(ILogger logger, string path);
}
