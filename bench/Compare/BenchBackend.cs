using System.Net;

namespace Forwarder.Bench.Compare;

/// <summary>The backend every arm forwards to, in its own process so it neither shares the generator's threads nor counts in its CPU.</summary>
internal sealed class BenchBackend(IPEndPoint endPoint, PeerProcess process) : IAsyncDisposable
{
    public IPEndPoint EndPoint { get; } = endPoint;

    /// <param name="kind">builtin, or nginx (HTTP only; faster, so the ceiling is higher).</param>
    public static async Task<BenchBackend> StartAsync(CompareProtocol protocol, string kind, Tools tools, string workDirectory, TextWriter log)
    {
        var endpoint = FreePort.Next();
        if (protocol == CompareProtocol.Http && kind == "nginx")
        {
            if (tools.Nginx is null)
            {
                throw new InvalidOperationException("--backend nginx: nginx is not installed (on Debian: apt-get install nginx); use --backend builtin.");
            }

            var directory = Directory.CreateDirectory(Path.Combine(workDirectory, "backend")).FullName;
            var config = Path.Combine(directory, "nginx.conf");
            await File.WriteAllTextAsync(config, PeerConfigs.NginxBackend(directory, endpoint)).ConfigureAwait(false);
            var process = await PeerProcess.StartAsync("nginx backend", tools.Nginx, ["-c", config, "-p", directory], endpoint, Path.Combine(workDirectory, "backend.log")).ConfigureAwait(false);
            await log.WriteLineAsync($"backend: nginx (1 worker) on {endpoint}").ConfigureAwait(false);
            return new BenchBackend(endpoint, process);
        }

        var builtin = await StartBuiltinAsync(protocol == CompareProtocol.Http ? "--http" : "--echo", endpoint, Path.Combine(workDirectory, "backend.log")).ConfigureAwait(false);
        await log.WriteLineAsync($"backend: built-in {(protocol == CompareProtocol.Http ? "HTTP hello" : "TCP echo")} on {endpoint}").ConfigureAwait(false);
        return new BenchBackend(endpoint, builtin);
    }

    /// <summary>The built-in h2c hello backend (HTTP/2 with prior knowledge), for the arms that forward HTTP/2.</summary>
    public static async Task<BenchBackend> StartH2cAsync(string workDirectory, TextWriter log)
    {
        var endpoint = FreePort.Next();
        var builtin = await StartBuiltinAsync("--h2c", endpoint, Path.Combine(workDirectory, "backend-h2c.log")).ConfigureAwait(false);
        await log.WriteLineAsync($"backend: built-in h2c hello on {endpoint}").ConfigureAwait(false);
        return new BenchBackend(endpoint, builtin);
    }

    private static Task<PeerProcess> StartBuiltinAsync(string mode, IPEndPoint endpoint, string logPath)
    {
        var self = typeof(BenchBackend).Assembly.Location;
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return PeerProcess.StartAsync("built-in backend", dotnet, [self, "serve", mode, endpoint.ToString()], endpoint, logPath,
            new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1" });
    }

    public ValueTask DisposeAsync() => process.DisposeAsync();
}
