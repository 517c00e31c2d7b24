using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// Hosts built from network namespaces, addressed from 198.18.0.0/15 (reserved for benchmarks):
/// two private sites, each a node behind its own NAT router, a public relay, and a "wan" that
/// routes between the routers and the relay. The test process reaches node A on a link of its
/// own (the client on site A) and serves node B's backend on another (the service on site B);
/// nothing else is reachable from it, and the sites cannot reach each other's private addresses.
/// Site B's router can forward a public port to node B's link listener (the direct route), and
/// that route can be cut.
/// </summary>
internal sealed partial class NatLab : IDisposable
{
    public const string RelayAddress = "198.18.0.10";
    public const string NodeAClientSide = "198.18.100.2";
    public const string TestClientAddress = "198.18.100.1";
    public const string BackendAddress = "198.18.101.1";
    public const string SiteBPublicAddress = "198.18.2.2";
    public const string NodeBPrivateAddress = "198.19.2.10";
    public const int LinkPort = 7443;

    /// <summary>
    /// The owner's pid (6 hex digits hold any Linux pid) and a random byte, so that a lab left by
    /// a process that died (a killed test run) can be told from one whose owner still runs.
    /// </summary>
    private readonly string _id = OwnerId(Environment.ProcessId);
    private readonly List<string> _namespaces = [];

    public NatLab()
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

    public string Wan => Name("wan");

    public string Relay => Name("rly");

    public string RouterA => Name("ra");

    public string RouterB => Name("rb");

    public string NodeA => Name("na");

    public string NodeB => Name("nb");

    /// <summary>Site B's router forwards <see cref="SiteBPublicAddress"/>:<see cref="LinkPort"/> to node B: a direct route between the sites.</summary>
    public void OpenDirectRoute() => Exec(RouterB, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", SiteBPublicAddress, "-p", "tcp", "--dport", $"{LinkPort}", "-j", "DNAT", "--to-destination", $"{NodeBPrivateAddress}:{LinkPort}");

    /// <summary>The direct route for QUIC: site B's router forwards UDP to node B's port too.</summary>
    public void OpenDirectQuicRoute() => Exec(RouterB, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", SiteBPublicAddress, "-p", "udp", "--dport", $"{LinkPort}", "-j", "DNAT", "--to-destination", $"{NodeBPrivateAddress}:{LinkPort}");

    /// <summary>Site B's router drops UDP to and from node B (a network that lets only TCP through); <see cref="PassUdp"/> undoes it.</summary>
    public void BlockUdp()
    {
        Exec(RouterB, "iptables", "-I", "FORWARD", "-d", NodeBPrivateAddress, "-p", "udp", "-j", "DROP");
        Exec(RouterB, "iptables", "-I", "FORWARD", "-s", NodeBPrivateAddress, "-p", "udp", "-j", "DROP");
    }

    public void PassUdp()
    {
        Exec(RouterB, "iptables", "-D", "FORWARD", "-d", NodeBPrivateAddress, "-p", "udp", "-j", "DROP");
        Exec(RouterB, "iptables", "-D", "FORWARD", "-s", NodeBPrivateAddress, "-p", "udp", "-j", "DROP");
    }

    /// <summary>Drops everything on the direct route, both ways, including connections already on it (no reset: they just go silent).</summary>
    public void CutDirectRoute()
    {
        Exec(RouterB, "iptables", "-I", "FORWARD", "-d", NodeBPrivateAddress, "-p", "tcp", "--dport", $"{LinkPort}", "-j", "DROP");
        Exec(RouterB, "iptables", "-I", "FORWARD", "-s", NodeBPrivateAddress, "-p", "tcp", "--sport", $"{LinkPort}", "-j", "DROP");
    }

    /// <summary>Removes the direct route and any cut: no route between the sites again.</summary>
    public void CloseDirectRoute()
    {
        Exec(RouterB, "iptables", "-t", "nat", "-F", "PREROUTING");
        Exec(RouterB, "iptables", "-F", "FORWARD");
    }

    /// <summary>Runs a command inside <paramref name="ns"/> and returns its output.</summary>
    public static string Exec(string ns, params string[] command) => Run("ip", ["netns", "exec", ns, .. command]);

    public void Dispose()
    {
        // Deleted first: a namespace outlives its name while sockets in it still retransmit
        // (after a cut, for minutes), and its end in this namespace would keep the addresses.
        foreach (var device in new[] { $"fw{_id}{Suffix(NodeA)}", $"fw{_id}{Suffix(NodeB)}" })
        {
            Run("ip", ["link", "del", device], check: false);
        }

        foreach (var ns in _namespaces)
        {
            Run("ip", ["netns", "del", ns], check: false);
        }
    }

    private string Name(string role) => $"fw{_id}{role}";

    /// <summary>A lab id owned by <paramref name="pid"/>: its pid in 6 hex digits and a random byte.</summary>
    public static string OwnerId(int pid) => $"{pid:x6}{Random.Shared.Next(256):x2}";

    /// <summary>
    /// Deletes what labs whose owner process is dead left behind: the processes still running in
    /// their namespaces (nodes a killed test run started), this namespace's ends of their links,
    /// and the namespaces (with every iptables rule, which all live inside them). A live owner's
    /// lab is never touched, as it may be a test run beside this one; a pid reused since only
    /// keeps a dead lab a while longer.
    /// </summary>
    public static void SweepOrphans()
    {
        var orphans = Run("ip", ["netns", "list"]).Split('\n')
            .Select(line => LabNamespace().Match(line.Split(' ')[0]))
            .Where(lab => lab.Success && !Directory.Exists($"/proc/{int.Parse(lab.Groups[2].Value, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture)}"))
            .ToList();
        foreach (var ns in orphans.Select(lab => lab.Value))
        {
            foreach (var pid in Run("ip", ["netns", "pids", ns], check: false).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                Run("kill", ["-KILL", pid.Trim()], check: false);
            }
        }

        foreach (var id in orphans.Select(lab => lab.Groups[1].Value).Distinct(StringComparer.Ordinal))
        {
            // Deleted before the namespaces, as in Dispose: a namespace outlives its name while sockets in it still retransmit.
            Run("ip", ["link", "del", $"fw{id}m"], check: false);
            Run("ip", ["link", "del", $"fw{id}n"], check: false);
        }

        foreach (var ns in orphans.Select(lab => lab.Value))
        {
            Run("ip", ["netns", "del", ns], check: false);
        }
    }

    private void Build()
    {
        SweepOrphans();
        foreach (var ns in new[] { Wan, Relay, RouterA, RouterB, NodeA, NodeB })
        {
            Run("ip", ["netns", "add", ns]);
            _namespaces.Add(ns);
            Exec(ns, "ip", "link", "set", "lo", "up");
        }

        // The public side.
        Wire(Wan, "198.18.0.1/24", Relay, $"{RelayAddress}/24");
        Wire(Wan, "198.18.1.1/24", RouterA, "198.18.1.2/24");
        Wire(Wan, "198.18.2.1/24", RouterB, $"{SiteBPublicAddress}/24");
        Exec(Relay, "ip", "route", "add", "default", "via", "198.18.0.1");
        Forward(Wan);

        // Each site: a node behind a router that masquerades it.
        Site(RouterA, NodeA, "198.18.1.1", "198.19.1.1/24", "198.19.1.10/24", "198.19.1.1");
        Site(RouterB, NodeB, "198.18.2.1", "198.19.2.1/24", $"{NodeBPrivateAddress}/24", "198.19.2.1");

        // The test process: a client on site A's node, a backend for site B's.
        Wire(null, $"{TestClientAddress}/30", NodeA, $"{NodeAClientSide}/30");
        Wire(null, $"{BackendAddress}/30", NodeB, "198.18.101.2/30");
    }

    private void Site(string router, string node, string upstream, string routerInside, string nodeAddress, string nodeGateway)
    {
        Wire(router, routerInside, node, nodeAddress);
        Exec(router, "ip", "route", "add", "default", "via", upstream);
        Exec(node, "ip", "route", "add", "default", "via", nodeGateway);
        Forward(router);
        Masquerade(router);
    }

    /// <summary>The site's private network, as its router's masquerading rule names it.</summary>
    private static string Inside(string router, string routerA) => router == routerA ? "198.19.1.0/24" : "198.19.2.0/24";

    /// <summary>The router's NAT: MASQUERADE (a mapping per source port, kept across destinations), or one with a new random port per destination (symmetric).</summary>
    private void Masquerade(string router, bool symmetric = false)
    {
        Exec(router, "iptables", "-t", "nat", "-F", "POSTROUTING");
        string[] rule = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", Inside(router, RouterA), "-o", Interface(router, "w"), "-j", "MASQUERADE"];
        Exec(router, symmetric ? [.. rule, "--random-fully"] : rule);
    }

    /// <summary>Site A's router maps each destination to its own random port: a symmetric NAT, which hole punching cannot get through.</summary>
    public void MakeSiteASymmetric() => Masquerade(RouterA, symmetric: true);

    /// <summary>Both routers also drop whatever arrives from the wan that is not a reply to what went out (a stateful firewall: port-restricted).</summary>
    public void RestrictInbound()
    {
        foreach (var router in new[] { RouterA, RouterB })
        {
            Exec(router, "iptables", "-A", "FORWARD", "-i", Interface(router, "w"), "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
            Exec(router, "iptables", "-A", "FORWARD", "-i", Interface(router, "w"), "-j", "DROP");
        }
    }

    /// <summary>
    /// Site B's router drops UDP from the wan that opens nothing of its own (its INPUT chain): what
    /// arrives before node B's NAT mapping is dropped there, leaving no conntrack entry behind.
    /// </summary>
    public void CloseRouterBPorts() => Exec(RouterB, "iptables", "-A", "INPUT", "-i", Interface(RouterB, "w"), "-p", "udp", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP");

    /// <summary>Back to plain MASQUERADE on both routers, with no firewall.</summary>
    public void ResetNat()
    {
        foreach (var router in new[] { RouterA, RouterB })
        {
            Masquerade(router);
            Exec(router, "iptables", "-F", "FORWARD");
            Exec(router, "iptables", "-F", "INPUT");
        }
    }

    /// <summary>A veth pair between two namespaces (null: the test process's own), each end addressed and up.</summary>
    private void Wire(string? left, string leftAddress, string right, string rightAddress)
    {
        var leftName = left is null ? $"fw{_id}{Suffix(right)}" : Interface(left, Suffix(right));
        var rightName = Interface(right, left is null ? "t" : Suffix(left));
        Run("ip", ["link", "add", leftName, "type", "veth", "peer", "name", rightName]);
        if (left is not null)
        {
            Run("ip", ["link", "set", leftName, "netns", left]);
        }

        Run("ip", ["link", "set", rightName, "netns", right]);
        Configure(left, leftName, leftAddress);
        Configure(right, rightName, rightAddress);
    }

    private static void Configure(string? ns, string device, string address)
    {
        string[] add = ["ip", "addr", "add", address, "dev", device];
        string[] up = ["ip", "link", "set", device, "up"];
        if (ns is null)
        {
            Run(add[0], add[1..]);
            Run(up[0], up[1..]);
        }
        else
        {
            Exec(ns, add);
            Exec(ns, up);
        }
    }

    private static void Forward(string ns) => Exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1");

    /// <summary>The device in <paramref name="ns"/> facing <paramref name="towards"/>: role + id + peer letter, 12 characters at most of the 15 allowed.</summary>
    private string Interface(string ns, string towards) => $"{ns[(2 + _id.Length)..]}{_id}{towards}";

    /// <summary>A one-letter tag for a namespace as the far end of a link ("w" for the wan).</summary>
    private string Suffix(string ns) => ns == Wan ? "w" : ns == Relay ? "y" : ns == RouterA ? "a" : ns == RouterB ? "b" : ns == NodeA ? "m" : "n";

    /// <summary>A lab's namespace: fw, the lab id (the owner's pid in 6 hex digits and a random byte), the role.</summary>
    [GeneratedRegex(@"^fw(([0-9a-f]{6})[0-9a-f]{2})(wan|rly|ra|rb|na|nb)$")]
    private static partial Regex LabNamespace();

    /// <summary>Runs a command in this namespace and returns its output.</summary>
    public static string Run(string file, string[] arguments, bool check = true)
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
}
