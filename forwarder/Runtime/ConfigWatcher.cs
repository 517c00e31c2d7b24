using System.Runtime.InteropServices;
using Forwarder.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// Reloads the config when its file changes (editors that write in place, those that write a new
/// file and rename it over the old one, and Kubernetes ConfigMap volumes, where the file is a
/// symlink through <c>..data</c> and an update renames a new <c>..data</c> symlink over the old
/// one) or on SIGHUP. Any event in the file's directory counts, since the file's own name sees
/// none in the ConfigMap swap; bursts are coalesced, and a file whose text is what is already
/// running is left alone.
/// </summary>
internal sealed partial class ConfigWatcher(ProxyRuntime runtime, ILogger<ConfigWatcher> logger) : IHostedService, IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    /// <summary>How long the file must read the same before it is loaded: a write in progress reads differently a moment later.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(100);

    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private DirectoryWatch? _watcher;
    private DirectoryWatch? _targetWatcher;
    private string _directory = string.Empty;
    private string? _targetDirectory;
    private PosixSignalRegistration? _hangup;
    private Task _watching = Task.CompletedTask;
    private int _forced;

    /// <summary>Starts watching before returning, so no change made after start-up can be missed.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (runtime.ConfigPath is not { } path)
        {
            return Task.CompletedTask;
        }

        var fullPath = Path.GetFullPath(path);
        _directory = Path.GetDirectoryName(fullPath)!;
        _watcher = Watch(_directory);
        FollowLink(fullPath);
        _hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            Interlocked.Exchange(ref _forced, 1);
            _signal.Release();
        });

        // A change between loading the file and watching it is caught by comparing digests.
        _signal.Release();
        _watching = WatchAsync(fullPath, _stopping.Token);
        LogWatching(logger, fullPath);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _watching.ConfigureAwait(false);
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        _targetWatcher?.Dispose();
        _hangup?.Dispose();
        _stopping.Dispose();
        _signal.Dispose();
    }

    private async Task WatchAsync(string path, CancellationToken stopping)
    {
        try
        {
            while (true)
            {
                await _signal.WaitAsync(stopping).ConfigureAwait(false);
                await Task.Delay(Debounce, stopping).ConfigureAwait(false);
                while (_signal.CurrentCount > 0)
                {
                    await _signal.WaitAsync(stopping).ConfigureAwait(false);
                }

                FollowLink(path);
                var forced = Interlocked.Exchange(ref _forced, 0) == 1;
                var digest = await SettledDigestAsync(path, stopping).ConfigureAwait(false);
                if (forced || digest != runtime.Config.Digest)
                {
                    await runtime.ReloadAsync(stopping).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    /// <summary>
    /// The whole directory, not the file's name: a ConfigMap update only renames ..data. The
    /// digest comparison keeps events on other files from reloading anything.
    /// </summary>
    private DirectoryWatch Watch(string directory)
        => DirectoryWatch.Start(directory, () => _signal.Release(), ex => LogCallbackFailed(logger, directory, ex));

    /// <summary>
    /// When the config file is a symlink to a file in another directory, watches that directory
    /// too (edits there raise nothing in the link's), and follows the link when it is re-aimed.
    /// Targets under the config's own directory (a ConfigMap's ..data/..TIMESTAMP) need nothing more.
    /// </summary>
    private void FollowLink(string path)
    {
        string? directory;
        try
        {
            directory = File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target ? Path.GetDirectoryName(target.FullName) : null;
        }
        catch (IOException)
        {
            // A dangling or looping link: the reload reports the file as unreadable.
            directory = null;
        }

        if (directory is not null && (directory + Path.DirectorySeparatorChar).StartsWith(_directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            directory = null;
        }

        if (directory == _targetDirectory)
        {
            return;
        }

        _targetWatcher?.Dispose();
        _targetWatcher = null;
        _targetDirectory = null;
        if (directory is null || !Directory.Exists(directory))
        {
            return;
        }

        try
        {
            _targetWatcher = Watch(directory);
            _targetDirectory = directory;
        }
        catch (IOException ex)
        {
            // Removed since Exists, or inotify's limits reached: the config's own directory and
            // SIGHUP still reload, and the next event there tries this directory again.
            LogTargetUnwatched(logger, directory, ex.HResult, ex.Message);
        }
    }

    /// <summary>
    /// The file's digest once two reads a moment apart agree, so an editor's truncate-then-write
    /// is not loaded half-written (which would log a failed reload for a file that is fine).
    /// </summary>
    private static async Task<string?> SettledDigestAsync(string path, CancellationToken stopping)
    {
        var digest = CurrentDigest(path);
        while (true)
        {
            await Task.Delay(Settle, stopping).ConfigureAwait(false);
            var again = CurrentDigest(path);
            if (again == digest)
            {
                return digest;
            }

            digest = again;
        }
    }

    private static string? CurrentDigest(string path)
    {
        try
        {
            return ConfigLoader.DigestOf(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Mid-rename: let the reload report the file as unreadable.
            return null;
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "Watching {Path} for changes (SIGHUP also reloads)")]
    private static partial void LogWatching(ILogger logger, string path);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Cannot watch {Directory}, where the config's symlink points (errno {Errno}: {Reason}); edits there reload only on SIGHUP or an event in the config's own directory (raise fs.inotify.max_user_watches / max_user_instances if those are the limit)")]
    private static partial void LogTargetUnwatched(ILogger logger, string directory, int errno, string reason);

    [LoggerMessage(EventId = 112, Level = LogLevel.Error, Message = "Watching {Directory}: handling a change failed")]
    private static partial void LogCallbackFailed(ILogger logger, string directory, Exception exception);
}
