using System.Globalization;

namespace Forwarder.Bench.Cli;

/// <summary>
/// Runs the generator's socket work on a fixed number of epoll threads with continuations inline,
/// which is what wrk's -t means. .NET reads these once, at the first socket, so they are set
/// before any is made; an explicit environment setting wins.
/// </summary>
internal static class SocketEngineSettings
{
    public static void Apply(int threads)
    {
        SetIfUnset("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", threads.ToString(CultureInfo.InvariantCulture));
        SetIfUnset("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
    }

    private static void SetIfUnset(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is null)
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }
}
