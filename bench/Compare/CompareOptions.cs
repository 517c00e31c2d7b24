namespace Forwarder.Bench.Compare;

/// <summary>What is carried between client and backend in a comparison.</summary>
internal enum CompareProtocol
{
    /// <summary>HTTP/1.1 keep-alive requests to a hello backend.</summary>
    Http,

    /// <summary>Fixed-size request/response over TCP to an echo backend.</summary>
    Tcp,
}

/// <summary>What <c>bench compare</c> was asked to do.</summary>
/// <param name="Arms">Arm names in run order (see <see cref="Arms"/>).</param>
/// <param name="Rates">Open-loop rates; null entries run closed loop.</param>
/// <param name="ProxyThreads">Threads (workers) every proxy gets: nbthread, worker_processes, tcp.ioThreads.</param>
/// <param name="Backend">builtin, or nginx (HTTP only; faster, so the ceiling is higher).</param>
/// <param name="YarpPath">The YARP peer's binary; null builds bench/yarp in Release when the yarp arm runs.</param>
internal sealed record CompareOptions(
    string Name,
    CompareProtocol Protocol,
    IReadOnlyList<string> Arms,
    IReadOnlyList<double?> Rates,
    int Reps,
    TimeSpan Duration,
    TimeSpan Warmup,
    int Connections,
    int Size,
    int ProxyThreads,
    string Backend,
    string OutputDirectory,
    string? ForwarderPath,
    string? YarpPath = null);
