using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Forwarder.Tests.Locality;

/// <summary>
/// Network namespaces standing for nodes, each wired to the test process's namespace by a veth
/// pair on its own /30 of 198.19.160.0/24 (within 198.18.0.0/15, reserved for benchmarks).
/// Backends listen inside a node's namespace: a thread enters it just long enough to create the
/// listening socket, which stays in that namespace, so a connection really crosses to the node.
/// </summary>
internal sealed partial class LocalityLab : IDisposable
{
    private const int NewNetworkNamespace = 0x40000000;

    private readonly string _id = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5];
    private readonly List<string> _namespaces = [];

    /// <param name="nodes">The nodes' names, at most 60; node i gets 198.19.160.(4i+2).</param>
    public LocalityLab(params string[] nodes)
    {
        try
        {
            for (var i = 0; i < nodes.Length; i++)
            {
                var ns = $"fw{_id}{nodes[i]}";
                Run("ip", "netns", "add", ns);
                _namespaces.Add(ns);
                var outside = $"fw{_id}{nodes[i]}";
                Run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns);
                Run("ip", "addr", "add", $"198.19.160.{(4 * i) + 1}/30", "dev", outside);
                Run("ip", "link", "set", outside, "up");
                Run("ip", "netns", "exec", ns, "ip", "addr", "add", $"198.19.160.{(4 * i) + 2}/30", "dev", "eth0");
                Run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up");
                Run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
                Addresses[nodes[i]] = IPAddress.Parse($"198.19.160.{(4 * i) + 2}");
                Namespaces[nodes[i]] = ns;
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Each node's address, inside its namespace.</summary>
    public Dictionary<string, IPAddress> Addresses { get; } = [];

    public Dictionary<string, string> Namespaces { get; } = [];

    /// <summary>A listening socket created inside <paramref name="ns"/>'s network namespace.</summary>
    public static Socket ListenIn(string ns, IPEndPoint endPoint)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            // The thread's own namespace, to go back to: a pool thread must not be left elsewhere (this one is not pooled, but be tidy).
            var home = Open("/proc/thread-self/ns/net");
            var target = Open($"/var/run/netns/{ns}");
            try
            {
                Check(SetNamespace(target, NewNetworkNamespace));
                try
                {
                    socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                    socket.Bind(endPoint);
                    socket.Listen(128);
                }
                finally
                {
                    Check(SetNamespace(home, NewNetworkNamespace));
                }
            }
            catch (Exception ex)
            {
                socket?.Dispose();
                socket = null;
                failure = ex;
            }
            finally
            {
                _ = Close(target);
                _ = Close(home);
            }
        });
        thread.Start();
        thread.Join();
        return socket ?? throw new InvalidOperationException($"cannot listen on {endPoint} in {ns}", failure);
    }

    public void Dispose()
    {
        foreach (var ns in _namespaces)
        {
            // Deleting the namespace deletes its veth end, and so the pair.
            Run("ip", ["netns", "del", ns], check: false);
        }
    }

    private static int Open(string path)
    {
        var fd = OpenFile(path, 0);
        return fd >= 0 ? fd : throw new IOException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
    }

    private static void Check(int result)
    {
        if (result != 0)
        {
            throw new IOException($"setns failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    private static void Run(params string[] command) => Run(command[0], command[1..], check: true);

    private static void Run(string file, string[] arguments, bool check)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        _ = output.Result;
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({process.ExitCode}): {errors}");
        }
    }

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNamespace(int fd, int type);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
