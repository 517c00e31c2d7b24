using Forwarder.Configuration;

namespace Forwarder.Runtime;

/// <summary>
/// Process-wide socket engine settings. .NET reads them once, when the first socket is created,
/// so they are set before the host starts and changes need a restart.
/// </summary>
internal static class SocketEngine
{
    private const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
    private const string ThreadCountVariable = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    public static void Configure(TcpConfig tcp)
    {
        // Inline completions run socket continuations on the epoll thread instead of queueing them
        // to the thread pool: a forwarded chunk crosses from one socket to the other without a
        // thread hop. Safe here because no handler blocks. An explicit environment setting wins.
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, tcp.InlineCompletions ? "1" : "0");
        }

        // With inline completions these threads do all the forwarding: one per core the proxy may
        // use (HAProxy's nbthread). Unset, .NET picks one per core.
        if (tcp.IoThreads is { } threads && Environment.GetEnvironmentVariable(ThreadCountVariable) is null)
        {
            Environment.SetEnvironmentVariable(ThreadCountVariable, threads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
