using Forwarder.Configuration;
using Forwarder.L7.Http2;
using Forwarder.Transports.Tcp;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>Start-up work for the descriptor limit: warming first-use paths, then deriving the connection cap.</summary>
internal sealed partial class ProxyRuntime
{
    private int _derivedMaxConnections;

    /// <summary>
    /// Touches what would otherwise be first used with the first connection, maybe at the
    /// descriptor limit; then, started (the admin endpoint too) and not yet proxying, counts what
    /// is open as the runtime's own and derives the cap from the rest.
    /// </summary>
    private async Task WarmUpAndDeriveLimitAsync()
    {
        AssemblyWarmup.LoadAll();
        if (source.Initial.Listeners.Any(l => l.Protocol == ListenerProtocol.Http))
        {
            await http2.WarmUpAsync().ConfigureAwait(false);
            HttpForwarder.WarmUpHandshakeCrypto();
        }

        _derivedMaxConnections = FileDescriptorLimit.DeriveMaxConnections();
    }

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "File descriptors: soft limit {InitialSoft} at start, now {Soft} (hard limit {Hard}); at most {MaxConnections} proxied connections ({Source}; the limit allows {Derived})")]
    private static partial void LogDescriptorLimit(ILogger logger, ulong initialSoft, ulong soft, ulong hard, int maxConnections, string source, int derived);
}
