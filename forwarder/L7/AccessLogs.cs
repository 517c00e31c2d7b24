namespace Forwarder.L7;

/// <summary>
/// The open access logs by destination, so listeners that share a file share one writer and a
/// reload that keeps a listener's log keeps the file open.
/// </summary>
internal sealed class AccessLogs : IAsyncDisposable
{
    private readonly Dictionary<string, AccessLog> _open = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>The log for <paramref name="destination"/>, opened on first use.</summary>
    /// <exception cref="IOException">The file cannot be opened.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be written.</exception>
    public AccessLog Get(string destination)
    {
        lock (_lock)
        {
            if (!_open.TryGetValue(destination, out var log))
            {
                log = AccessLog.Open(destination);
                _open[destination] = log;
            }

            return log;
        }
    }

    /// <summary>Closes the logs no longer in <paramref name="destinations"/> (after a reload).</summary>
    public async ValueTask RetainAsync(IReadOnlySet<string> destinations)
    {
        List<AccessLog> closing;
        lock (_lock)
        {
            closing = [.. _open.Values.Where(l => !destinations.Contains(l.Destination))];
            foreach (var log in closing)
            {
                _open.Remove(log.Destination);
            }
        }

        foreach (var log in closing)
        {
            await log.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => RetainAsync(new HashSet<string>());
}
