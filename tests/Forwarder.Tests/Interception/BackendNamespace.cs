using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

/// <summary>
/// A "pod" of its own, linked to the lab's node by a veth pair, running an independent HTTP/1.1
/// server (Python's http.server, keep-alive) that answers every GET with its name: the backends a
/// Service's EndpointSlice points at, on addresses only the node can reach.
/// </summary>
internal sealed class BackendNamespace : IAsyncDisposable
{
    public const int Port = 8080;

    // ThreadingHTTPServer serves each keep-alive connection on its own thread, as a real app would.
    private const string Server = """
        import http.server, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = sys.argv[1].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler).serve_forever()
        """;

    private readonly string _node;
    private readonly string _link;
    private Process? _server;

    private BackendNamespace(string node, int index, string name)
    {
        _node = node;
        Name = name;
        Namespace = $"fw{Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5]}icb";
        _link = $"icb{index}";
        Address = IPAddress.Parse($"198.19.{210 + index}.2");
    }

    public string Name { get; }

    public string Namespace { get; }

    public IPAddress Address { get; }

    /// <summary>Builds namespace number <paramref name="index"/> (0-9) off <paramref name="node"/> and waits until its server answers there.</summary>
    public static async Task<BackendNamespace> StartAsync(string node, int index, string name)
    {
        var backend = new BackendNamespace(node, index, name);
        try
        {
            await backend.BuildAsync(index);
            return backend;
        }
        catch
        {
            await backend.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_server is { HasExited: false })
        {
            _server.Kill(entireProcessTree: true);
            _server.WaitForExit();
        }

        _server?.Dispose();
        InterceptLab.Run("ip", ["netns", "del", Namespace], check: false);
        InterceptLab.Run("ip", ["netns", "exec", _node, "ip", "link", "del", _link], check: false);
        return ValueTask.CompletedTask;
    }

    private async Task BuildAsync(int index)
    {
        InterceptLab.Run("ip", ["netns", "add", Namespace]);
        InterceptLab.Exec(Namespace, "ip", "link", "set", "lo", "up");
        InterceptLab.Exec(_node, "ip", "link", "add", _link, "type", "veth", "peer", "name", "eth0", "netns", Namespace);
        InterceptLab.Exec(_node, "ip", "addr", "add", $"198.19.{210 + index}.1/24", "dev", _link);
        InterceptLab.Exec(_node, "ip", "link", "set", _link, "up");
        InterceptLab.Exec(Namespace, "ip", "addr", "add", $"{Address}/24", "dev", "eth0");
        InterceptLab.Exec(Namespace, "ip", "link", "set", "eth0", "up");

        var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "netns", "exec", Namespace, "/usr/bin/python3", "-c", Server, Name, Port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        _server = Process.Start(start)!;
        await Eventually.TrueAsync(
            async () =>
            {
                using var socket = InterceptLab.SocketIn(_node, AddressFamily.InterNetwork);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(Address, Port));
                    return true;
                }
                catch (SocketException)
                {
                    return _server.HasExited ? throw new InvalidOperationException($"the backend in {Namespace} exited: {await _server.StandardError.ReadToEndAsync()}") : false;
                }
            },
            $"backend {Name} listens in {Namespace}");
    }
}
