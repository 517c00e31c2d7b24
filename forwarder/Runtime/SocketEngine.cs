using System.Globalization;
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

    /// <summary>Below this many cores one I/O thread is the default; from it on, one per core.</summary>
    internal const int CoresForThreadPerCore = 4;

    public static void Configure(TcpConfig tcp)
    {
        // Inline completions run socket continuations on the epoll thread instead of queueing them
        // to the thread pool: a forwarded chunk crosses from one socket to the other without a
        // thread hop. Safe here because no handler blocks. An explicit environment setting wins.
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, tcp.InlineCompletions ? "1" : "0");
        }

        // With inline completions these threads do all the forwarding (HAProxy's nbthread).
        if (Environment.GetEnvironmentVariable(ThreadCountVariable) is null)
        {
            Environment.SetEnvironmentVariable(ThreadCountVariable, IoThreads(tcp, Environment.ProcessorCount).ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>
    /// The I/O threads of either engine: the configured count, else the default for this many cores
    /// (.NET's count honours the CPU affinity mask and a container's CPU quota).
    /// </summary>
    public static int IoThreads(TcpConfig tcp, int processorCount) => tcp.IoThreads ?? DefaultIoThreads(processorCount);

    /// <summary>
    /// A node proxy shares its cores with the applications it serves. On a small node a thread per
    /// core competes with them for every core and forwards less than one thread does (measured in
    /// perf-reports/busy-node); from four cores on, one thread per core, as HAProxy's nbthread.
    /// </summary>
    public static int DefaultIoThreads(int processorCount) => processorCount < CoresForThreadPerCore ? 1 : processorCount;
}
