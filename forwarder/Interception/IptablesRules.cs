using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;

namespace Forwarder.Interception;

/// <summary>
/// The forwarder's iptables rules as iptables-restore input, for one address family. They live in
/// chains of its own, reached by one jump from each built-in chain, so installing flushes and
/// refills only those chains (a restart after a crash re-creates them as they should be) and
/// removing takes out exactly what was added. Packets carrying the forwarder's mark (its own
/// upstream sockets) pass untouched, so its connections to endpoints are never caught.
/// </summary>
internal static class IptablesRules
{
    public const string OutputChain = "FORWARDER-OUTPUT";
    public const string PreroutingChain = "FORWARDER-PREROUTING";

    /// <summary>The routing table and fwmark TPROXY routes marked packets through (to the local stack via lo).</summary>
    public const int TproxyTable = 0x4658;

    private static readonly (string BuiltIn, string Chain)[] Jumps = [("OUTPUT", OutputChain), ("PREROUTING", PreroutingChain)];

    /// <summary>The table the TCP rules are in: nat for REDIRECT, mangle for TPROXY. UDP rules are always in nat.</summary>
    public static string Table(InterceptMode mode) => mode == InterceptMode.Redirect ? NatTable : "mangle";

    public const string NatTable = "nat";

    /// <summary>What is caught in <paramref name="family"/>: the capture networks, or else the VIPs one by one.</summary>
    public static IReadOnlyList<string> Matches(InterceptConfig config, IEnumerable<IPEndPoint> vips, AddressFamily family)
        => config.Capture is { } capture
            ? [.. capture.Where(n => n.BaseAddress.AddressFamily == family).Select(n => $"-d {n}")]
            : [.. vips.Where(v => v.AddressFamily == family).OrderBy(v => v.ToString(), StringComparer.Ordinal).Select(v => $"-d {Host(v)} --dport {v.Port}")];

    /// <summary>
    /// The UDP VIPs of <paramref name="family"/>, each with the port of its own udp listener (a
    /// placeholder when printed before any is bound): capture networks do not apply, as each VIP needs its port.
    /// </summary>
    public static IReadOnlyList<string> UdpRedirects(IEnumerable<(IPEndPoint Vip, string Port)> ports, AddressFamily family)
        => [.. ports.Where(p => p.Vip.AddressFamily == family).OrderBy(p => p.Vip.ToString(), StringComparer.Ordinal).Select(p => $"-d {Host(p.Vip)} --dport {p.Vip.Port} -j REDIRECT --to-ports {p.Port}")];

    /// <summary>
    /// The tables the rules of one family fill, each with its TCP matches and UDP redirects: in
    /// redirect mode both go to nat; in tproxy mode TCP goes to mangle and UDP to nat (REDIRECT:
    /// TPROXY for UDP would need a transparent socket per VIP to reply from). A table with nothing to catch is not listed.
    /// </summary>
    public static Dictionary<string, (IReadOnlyList<string> Tcp, IReadOnlyList<string> Udp)> Tables(InterceptConfig config, IReadOnlyList<string> tcp, IReadOnlyList<string> udp)
    {
        var tables = new Dictionary<string, (IReadOnlyList<string>, IReadOnlyList<string>)>(StringComparer.Ordinal);
        if (config.Mode == InterceptMode.Redirect)
        {
            if (tcp.Count + udp.Count > 0)
            {
                tables[NatTable] = (tcp, udp);
            }

            return tables;
        }

        if (tcp.Count > 0)
        {
            tables[Table(config.Mode)] = (tcp, []);
        }

        if (udp.Count > 0)
        {
            tables[NatTable] = ([], udp);
        }

        return tables;
    }

    /// <summary>
    /// iptables-restore --noflush input installing the rules of <paramref name="table"/>;
    /// <paramref name="existingJumps"/> are the jumps (<c>BUILTIN -p PROTO</c>) already in place
    /// (left alone, so a jump is never doubled).
    /// </summary>
    public static string Install(InterceptConfig config, string table, IReadOnlyList<string> matches, IReadOnlyList<string> udpRedirects, ICollection<string> existingJumps)
    {
        var port = config.Listener.EndPoint.Port;
        var mark = $"0x{config.Mark:x}";
        var text = new StringBuilder();
        text.Append('*').Append(table).Append('\n');
        text.Append(':').Append(OutputChain).Append(" - [0:0]\n");
        text.Append(':').Append(PreroutingChain).Append(" - [0:0]\n");
        text.Append($"-A {OutputChain} -m mark --mark {mark} -j RETURN\n");
        foreach (var match in matches)
        {
            if (config.Mode == InterceptMode.Redirect)
            {
                text.Append($"-A {OutputChain} -p tcp {match} -j REDIRECT --to-ports {port}\n");
                text.Append($"-A {PreroutingChain} -p tcp {match} -j REDIRECT --to-ports {port}\n");
            }
            else
            {
                // Local connections are marked so policy routing loops them through lo into PREROUTING, where TPROXY takes them.
                text.Append($"-A {OutputChain} -p tcp {match} -j MARK --set-mark 0x{TproxyTable:x}\n");
                text.Append($"-A {PreroutingChain} -p tcp {match} -j TPROXY --on-port {port} --tproxy-mark 0x{TproxyTable:x}/0xffffffff\n");
            }
        }

        foreach (var redirect in udpRedirects)
        {
            text.Append($"-A {OutputChain} -p udp {redirect}\n");
            text.Append($"-A {PreroutingChain} -p udp {redirect}\n");
        }

        foreach (var protocol in new[] { ("tcp", matches.Count > 0), ("udp", udpRedirects.Count > 0) }.Where(p => p.Item2).Select(p => p.Item1))
        {
            foreach (var (builtIn, chain) in Jumps)
            {
                if (!existingJumps.Contains($"{builtIn} -p {protocol}"))
                {
                    text.Append($"-A {builtIn} -p {protocol} -j {chain}\n");
                }
            }
        }

        return text.Append("COMMIT\n").ToString();
    }

    /// <summary>
    /// iptables-restore --noflush input removing the rules: the jumps found in
    /// <paramref name="saved"/> (iptables-save output of the table), then our chains; null when none is there.
    /// </summary>
    public static string? Remove(string table, string saved)
    {
        var lines = saved.Split('\n', StringSplitOptions.TrimEntries);
        var chains = new[] { OutputChain, PreroutingChain }.Where(c => lines.Contains($":{c} - [0:0]") || lines.Any(l => l.StartsWith($":{c} ", StringComparison.Ordinal))).ToArray();
        var jumps = lines.Where(l => Jumps.Any(j => l.StartsWith($"-A {j.BuiltIn} ", StringComparison.Ordinal) && l.EndsWith($"-j {j.Chain}", StringComparison.Ordinal))).ToArray();
        if (chains.Length == 0 && jumps.Length == 0)
        {
            return null;
        }

        var text = new StringBuilder().Append('*').Append(table).Append('\n');
        foreach (var jump in jumps)
        {
            text.Append("-D").Append(jump.AsSpan(2)).Append('\n');
        }

        foreach (var chain in chains)
        {
            text.Append($"-F {chain}\n-X {chain}\n");
        }

        return text.Append("COMMIT\n").ToString();
    }

    /// <summary>The jumps to ours (<c>BUILTIN -p PROTO</c>) that <paramref name="saved"/> (iptables-save output) already has.</summary>
    public static HashSet<string> ExistingJumps(string saved)
    {
        var lines = saved.Split('\n', StringSplitOptions.TrimEntries);
        return [.. Jumps.SelectMany(j => new[] { "tcp", "udp" }.Where(p => lines.Contains($"-A {j.BuiltIn} -p {p} -j {j.Chain}")).Select(p => $"{j.BuiltIn} -p {p}"))];
    }

    private static string Host(IPEndPoint vip) => vip.AddressFamily == AddressFamily.InterNetwork ? $"{vip.Address}/32" : $"{vip.Address}/128";

    /// <summary>The policy routing TPROXY needs, as ip(8) argument lists: marked packets are delivered locally.</summary>
    public static IReadOnlyList<string[]> TproxyRoutes(AddressFamily family)
    {
        var version = family == AddressFamily.InterNetwork ? "-4" : "-6";
        var all = family == AddressFamily.InterNetwork ? "0.0.0.0/0" : "::/0";
        var table = TproxyTable.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return
        [
            [version, "rule", "add", "fwmark", $"0x{TproxyTable:x}", "lookup", table],
            [version, "route", "add", "local", all, "dev", "lo", "table", table],
        ];
    }
}
