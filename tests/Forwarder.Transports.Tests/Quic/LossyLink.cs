using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// A network namespace joined to this one by a veth pair (a /30 in 198.18.0.0/15), where iptables
/// drops a random share of the UDP packets arriving at either end: a lossy link between a peer run in
/// the namespace and our code here. Needs root.
/// </summary>
internal sealed class LossyLink : IDisposable
{
    private readonly string _hostLink;
    private readonly string[] _hostRule;
    private readonly string[] _namespaceRule;

    public LossyLink(double dropProbability)
    {
        var tag = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5];
        var subnet = Random.Shared.Next(256);
        Namespace = $"fwq{tag}";
        _hostLink = $"q{tag}";
        HostAddress = IPAddress.Parse($"198.18.{subnet}.1");
        PeerAddress = IPAddress.Parse($"198.18.{subnet}.2");
        var drop = new[] { "-p", "udp", "-m", "statistic", "--mode", "random", "--probability", dropProbability.ToString(CultureInfo.InvariantCulture), "-j", "DROP" };
        _hostRule = ["INPUT", "-i", _hostLink, .. drop];
        _namespaceRule = ["INPUT", "-i", "eth0", .. drop];
        try
        {
            Run("ip", "netns", "add", Namespace);
            Run("ip", "netns", "exec", Namespace, "ip", "link", "set", "lo", "up");
            Run("ip", "link", "add", _hostLink, "type", "veth", "peer", "name", "eth0", "netns", Namespace);
            Run("ip", "addr", "add", $"{HostAddress}/30", "dev", _hostLink);
            Run("ip", "link", "set", _hostLink, "up");
            Run("ip", "netns", "exec", Namespace, "ip", "addr", "add", $"{PeerAddress}/30", "dev", "eth0");
            Run("ip", "netns", "exec", Namespace, "ip", "link", "set", "eth0", "up");
            Run(["iptables", "-A", .. _hostRule]);
            Run(["ip", "netns", "exec", Namespace, "iptables", "-A", .. _namespaceRule]);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Namespace { get; }
    public IPAddress HostAddress { get; }
    public IPAddress PeerAddress { get; }

    /// <summary>Packets dropped so far: (arriving here, arriving in the namespace).</summary>
    public (long Host, long Peer) Dropped() => (DropCount([], _hostLink), DropCount(["ip", "netns", "exec", Namespace], "eth0"));

    public void Dispose()
    {
        Run(["iptables", "-D", .. _hostRule], check: false);
        // Deleting the namespace deletes its end of the veth pair, and so the pair and its rules.
        Run(["ip", "netns", "del", Namespace], check: false);
    }

    private static long DropCount(string[] prefix, string link)
    {
        var listing = Run([.. prefix, "iptables", "-nvxL", "INPUT"]);
        var line = listing.Split('\n').First(line => line.Contains("DROP", StringComparison.Ordinal) && line.Contains(link, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
    }

    private static string Run(params string[] command) => Run(command, check: true);

    private static string Run(string[] command, bool check)
    {
        using var process = Process.Start(new ProcessStartInfo(command[0], command[1..])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{string.Join(' ', command)}' failed ({process.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }
}
