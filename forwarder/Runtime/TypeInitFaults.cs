namespace Forwarder.Runtime;

/// <summary>
/// Remembers that a type failed its static initialization. .NET never retries one: every later
/// use throws the same TypeInitializationException, so the path that needs it (an admin handler,
/// the HTTP/2 front) is broken until restart, and /readyz must say so instead of staying 200.
/// </summary>
internal sealed class TypeInitFaults
{
    private string? _firstBroken;

    /// <summary>The first type found broken, or null.</summary>
    public string? Broken => Volatile.Read(ref _firstBroken);

    /// <summary>Records the type when <paramref name="exception"/> (or one it wraps) is a failed type initialization.</summary>
    public bool Observe(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is TypeInitializationException failed)
            {
                Interlocked.CompareExchange(ref _firstBroken, failed.TypeName ?? "(unknown type)", null);
                return true;
            }

            if (e is AggregateException { InnerExceptions: var inner } && inner.Any(Observe))
            {
                return true;
            }
        }

        return false;
    }
}
