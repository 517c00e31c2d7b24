using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Forwarder.Tests.Interception;

/// <summary>
/// A node and a pod built from network namespaces, for interception: the forwarder runs in the
/// node namespace (where its rules go); the pod reaches the node over a veth pair, so its
/// connections arrive in PREROUTING, while the node's own go through OUTPUT. The test process is
/// wired to the node too and serves the backends there. Service VIPs (198.19.96.0/24 and
/// 2001:2:0:96::/64, from the benchmark ranges) are routed to lo in the node and through the
/// node from the pod: what the rules do not catch goes nowhere, never off the machine.
/// </summary>
public sealed partial class InterceptLab : IDisposable
{
    public const int InterceptPort = 15001;
    public const int AdminPort = 9901;
    public const string VipRange = "198.19.96.0/24";

    private const int CloneNewNet = 0x40000000;

    private readonly string _id = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5];
    private readonly int _subnet = FreeSubnet();
    private readonly List<string> _namespaces = [];

    public InterceptLab()
    {
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Node => $"fw{_id}icn";

    public string Pod => $"fw{_id}icp";

    /// <summary>The test process's end of its link to the node: backends listen here.</summary>
    public IPAddress HostAddress => IPAddress.Parse($"198.18.{_subnet}.1");

    /// <summary>The node's end of that link: the forwarder's admin endpoint listens here.</summary>
    public IPAddress NodeAddress => IPAddress.Parse($"198.18.{_subnet}.2");

    public static IPAddress Vip(int host) => IPAddress.Parse($"198.19.96.{host}");

    public static IPAddress VipV6(int host) => IPAddress.Parse($"2001:2:0:96::{host:x}");

    /// <summary>A TCP (or udp) socket created inside <paramref name="ns"/>: its connections and datagrams start there, wherever it is used from.</summary>
    public static Socket SocketIn(string ns, AddressFamily family, SocketType type = SocketType.Stream)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{ns}");
                if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns({ns}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                socket = new Socket(family, type, type == SocketType.Dgram ? ProtocolType.Udp : ProtocolType.Tcp);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });

        // The thread ends after this one socket, taking its changed namespace with it.
        thread.Start();
        thread.Join();
        return socket ?? throw new InvalidOperationException("no socket", failure);
    }

    /// <summary>Runs a command inside <paramref name="ns"/> and returns its output.</summary>
    public static string Exec(string ns, params string[] command) => Run("ip", ["netns", "exec", ns, .. command]);

    /// <summary>The node's table as iptables-save (ip6tables-save for IPv6) prints it, without comments and counters.</summary>
    public string Rules(string table = "nat", bool ipv6 = false)
        => string.Join('\n', Exec(Node, ipv6 ? "ip6tables-save" : "iptables-save", "-t", table).Split('\n').Where(l => !l.StartsWith('#') && l.Length > 0));

    /// <summary>Flushes the node's nat and mangle tables and deletes their user chains: what a test left behind.</summary>
    public void ResetRules()
    {
        foreach (var tool in new[] { "iptables", "ip6tables" })
        {
            foreach (var table in new[] { "nat", "mangle" })
            {
                Exec(Node, tool, "-t", table, "-F");
                Exec(Node, tool, "-t", table, "-X");
            }
        }
    }

    public void Dispose()
    {
        Run("ip", ["link", "del", $"fw{_id}ic0"], check: false);
        foreach (var ns in _namespaces)
        {
            Run("ip", ["netns", "del", ns], check: false);
        }
    }

    /// <summary>A 198.18.X.0/24 this namespace has no address in (another lab's link would shadow ours).</summary>
    private static int FreeSubnet()
    {
        var used = Run("ip", ["-4", "-o", "addr", "show"]);
        return Enumerable.Range(0, 100).Select(_ => 150 + Random.Shared.Next(100)).First(n => !used.Contains($" 198.18.{n}.", StringComparison.Ordinal));
    }

    private void Build()
    {
        // What a lab that was never disposed (a killed test run) left in this namespace.
        foreach (var stale in StaleLink().Matches(Run("ip", ["-o", "link", "show"])).Select(m => m.Groups[1].Value).Distinct())
        {
            Run("ip", ["link", "del", stale], check: false);
        }

        foreach (var stale in StaleNamespace().Matches(Run("ip", ["netns", "list"])).Select(m => m.Groups[1].Value))
        {
            Run("ip", ["netns", "del", stale], check: false);
        }

        foreach (var ns in new[] { Node, Pod })
        {
            Run("ip", ["netns", "add", ns]);
            _namespaces.Add(ns);
            Exec(ns, "ip", "link", "set", "lo", "up");
        }

        // The test process and the node.
        var host = $"fw{_id}ic0";
        Run("ip", ["link", "add", host, "type", "veth", "peer", "name", "ic0", "netns", Node]);
        Run("ip", ["addr", "add", $"{HostAddress}/24", "dev", host]);
        Run("ip", ["link", "set", host, "up"]);
        Exec(Node, "ip", "addr", "add", $"{NodeAddress}/24", "dev", "ic0");
        Exec(Node, "ip", "link", "set", "ic0", "up");

        // The pod and the node.
        Exec(Node, "ip", "link", "add", "ic1", "type", "veth", "peer", "name", "eth0", "netns", Pod);
        Exec(Node, "ip", "addr", "add", "198.19.200.1/24", "dev", "ic1");
        Exec(Node, "ip", "-6", "addr", "add", "2001:2:0:200::1/64", "dev", "ic1", "nodad");
        Exec(Node, "ip", "link", "set", "ic1", "up");
        Exec(Pod, "ip", "addr", "add", "198.19.200.2/24", "dev", "eth0");
        Exec(Pod, "ip", "-6", "addr", "add", "2001:2:0:200::2/64", "dev", "eth0", "nodad");
        Exec(Pod, "ip", "link", "set", "eth0", "up");
        Exec(Pod, "ip", "route", "add", VipRange, "via", "198.19.200.1");
        Exec(Pod, "ip", "-6", "route", "add", "2001:2:0:96::/64", "via", "2001:2:0:200::1");

        // VIPs exist only as rules: the node routes them to lo, and forwards nothing.
        Exec(Node, "ip", "route", "add", VipRange, "dev", "lo");
        Exec(Node, "ip", "-6", "route", "add", "2001:2:0:96::/64", "dev", "lo");
        Exec(Node, "sysctl", "-qw", "net.ipv4.ip_forward=0");
    }

    /// <summary>Runs a command in this process's namespace and returns its output; a failure throws unless <paramref name="check"/> is false.</summary>
    internal static string Run(string file, string[] arguments, bool check = true)
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
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({process.ExitCode}): {errors}");
        }

        return output.Result;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\d+: (fw[0-9a-f]{5}ic0)@", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex StaleLink();

    [System.Text.RegularExpressions.GeneratedRegex(@"^(fw[0-9a-f]{5}ic[np])\b", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex StaleNamespace();

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int type);
}
