using System.Net;

namespace Forwarder.Bench.Compare;

/// <summary>Where one arm's proxies and backends run: ports, files and the machine's tools.</summary>
/// <param name="YarpPath">The YARP peer's binary, for the yarp arm; null when that arm is not run.</param>
internal sealed record ArmEnvironment(string WorkDirectory, IPEndPoint Backend, CompareProtocol Protocol, int ProxyThreads, Tools Tools, string ForwarderPath, string? YarpPath = null);

/// <summary>A started arm: the address the load goes to, and the proxy processes to sample (none for direct; two for a node link).</summary>
internal sealed record RunningArm(string Name, IPEndPoint Entry, IReadOnlyList<PeerProcess> Proxies) : IAsyncDisposable
{
    public int[] Pids => [.. Proxies.Select(p => p.Pid)];

    /// <summary>Stops the processes, the one the load enters first.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var proxy in Proxies)
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>One way of carrying the load to the backend.</summary>
/// <param name="Needs">The tool it needs, checked before the run; null when it needs none.</param>
internal sealed record Arm(string Name, string Description, string? Needs, Func<ArmEnvironment, Task<RunningArm>> StartAsync);

/// <summary>The arms a comparison can run, by name.</summary>
internal static class ArmCatalog
{
    public static IReadOnlyList<string> HttpDefaults { get; } = ["direct", "forwarder", "forwarder-l7", "haproxy-tcp", "haproxy-http", "nginx-stream", "nginx-http", "yarp"];

    public static IReadOnlyList<string> TcpDefaults { get; } = ["direct", "forwarder", "haproxy-tcp", "nginx-stream"];

    public static IReadOnlyDictionary<string, Arm> All { get; } = new Arm[]
    {
        new("direct", "no proxy: the client talks to the backend (the ceiling)", null, env => Task.FromResult(new RunningArm("direct", env.Backend, []))),
        new("forwarder", "this project, tcp listener (L4)", null, env => StartForwarderAsync(env, http: false)),
        new("forwarder-l7", "this project, http listener (L7), upstream keep-alive", null, env => StartForwarderAsync(env, http: true)),
        new("forwarder-link", "this project across a node link: a tcp listener on one node, the service on another (mutual TLS 1.3 + yamux), two processes", null, env => NodeLinkArm.StartAsync(env, "forwarder-link", env.ForwarderPath, null)),
        new("haproxy-tcp", "HAProxy, mode tcp", "haproxy", env => StartHaproxyAsync(env, http: false)),
        new("haproxy-http", "HAProxy, mode http, http-reuse always", "haproxy", env => StartHaproxyAsync(env, http: true)),
        new("nginx-stream", "nginx stream proxy (L4)", "nginx", env => StartNginxAsync(env, http: false)),
        new("nginx-http", "nginx http proxy, upstream keepalive", "nginx", env => StartNginxAsync(env, http: true)),
        new("yarp", "YARP 2.3 on Kestrel with its defaults (HTTP only): what a .NET user would pick", null, StartYarpAsync),
    }.ToDictionary(a => a.Name, StringComparer.Ordinal);

    /// <summary>Whether the arm runs this project (forwarder, forwarder-l7) rather than a peer or no proxy.</summary>
    public static bool IsOurs(string arm) => arm.StartsWith("forwarder", StringComparison.Ordinal);

    /// <summary>Whether the arm can carry the protocol (the HTTP proxies cannot carry raw TCP echo).</summary>
    public static bool Supports(string arm, CompareProtocol protocol)
        => protocol == CompareProtocol.Http || !(arm.EndsWith("-http", StringComparison.Ordinal) || arm.Contains("-l7", StringComparison.Ordinal) || arm == "yarp");

    /// <summary>Whether the arm runs the YARP peer, which is built from bench/yarp before the run.</summary>
    public static bool IsYarp(string arm) => arm == "yarp";

    private static Task<RunningArm> StartForwarderAsync(ArmEnvironment env, bool http)
        => StartForwarderAsync(env, http, http ? "forwarder-l7" : "forwarder", env.ForwarderPath, null);

    /// <summary>The forwarder's tcp (L4) or http (L7) listener from any binary, under the name given (the gate runs two builds side by side).</summary>
    /// <param name="variables">Extra environment, e.g. the DelayInjection build's wait.</param>
    public static Task<RunningArm> StartForwarderAsync(ArmEnvironment env, bool http, string name, string binary, IReadOnlyDictionary<string, string>? variables)
        => StartForwarderAsync(env, name, binary, variables, entry => http ? PeerConfigs.ForwarderHttp(entry, env.Backend, env.ProxyThreads) : PeerConfigs.Forwarder(entry, env.Backend, env.ProxyThreads));

    /// <summary>The forwarder's native HTTP/2 front (an http listener whose service speaks h2c) in front of the h2c backend given.</summary>
    public static Task<RunningArm> StartForwarderH2Async(ArmEnvironment env, IPEndPoint h2cBackend, string name, string binary, IReadOnlyDictionary<string, string>? variables)
        => StartForwarderAsync(env, name, binary, variables, entry => PeerConfigs.ForwarderHttp2(entry, h2cBackend, env.ProxyThreads));

    private static async Task<RunningArm> StartForwarderAsync(ArmEnvironment env, string name, string binary, IReadOnlyDictionary<string, string>? variables, Func<IPEndPoint, string> configFor)
    {
        var entry = FreePort.Next();
        var config = Path.Combine(env.WorkDirectory, $"{name}.yaml");
        await File.WriteAllTextAsync(config, configFor(entry)).ConfigureAwait(false);
        var process = await PeerProcess.StartAsync(name, binary, ["--config", config, "--log-level", "Warning"], entry, Path.Combine(env.WorkDirectory, $"{name}.log"), variables).ConfigureAwait(false);
        return new RunningArm(name, entry, [process]);
    }

    private static async Task<RunningArm> StartHaproxyAsync(ArmEnvironment env, bool http)
    {
        var name = http ? "haproxy-http" : "haproxy-tcp";
        var entry = FreePort.Next();
        var config = Path.Combine(env.WorkDirectory, $"{name}.cfg");
        await File.WriteAllTextAsync(config, PeerConfigs.Haproxy(entry, env.Backend, env.ProxyThreads, http)).ConfigureAwait(false);
        var process = await PeerProcess.StartAsync(name, env.Tools.Haproxy!, ["-f", config, "-db"], entry, Path.Combine(env.WorkDirectory, $"{name}.log")).ConfigureAwait(false);
        return new RunningArm(name, entry, [process]);
    }

    /// <summary>
    /// YARP has no thread setting of its own: the runtime is told it has as many processors as the
    /// other proxies get threads, which sizes its thread pool and server GC heaps the same way.
    /// </summary>
    private static async Task<RunningArm> StartYarpAsync(ArmEnvironment env)
    {
        var entry = FreePort.Next();
        var binary = env.YarpPath ?? throw new InvalidOperationException("the yarp arm needs the YARP peer (bench/yarp) located before the run.");
        var variables = new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = env.ProxyThreads.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var process = await PeerProcess.StartAsync("yarp", binary, ["--listen", entry.ToString(), "--backend", env.Backend.ToString()], entry, Path.Combine(env.WorkDirectory, "yarp.log"), variables).ConfigureAwait(false);
        return new RunningArm("yarp", entry, [process]);
    }

    private static async Task<RunningArm> StartNginxAsync(ArmEnvironment env, bool http)
    {
        var name = http ? "nginx-http" : "nginx-stream";
        var entry = FreePort.Next();
        var directory = Directory.CreateDirectory(Path.Combine(env.WorkDirectory, name)).FullName;
        var config = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(config, http ? PeerConfigs.NginxHttpProxy(directory, entry, env.Backend, env.ProxyThreads) : PeerConfigs.NginxStream(directory, entry, env.Backend, env.ProxyThreads, env.Tools.NginxStreamModule)).ConfigureAwait(false);
        var process = await PeerProcess.StartAsync(name, env.Tools.Nginx!, ["-c", config, "-p", directory], entry, Path.Combine(env.WorkDirectory, $"{name}.log")).ConfigureAwait(false);
        return new RunningArm(name, entry, [process]);
    }
}
