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

    /// <summary>The table the rules are in: nat for REDIRECT, mangle for TPROXY.</summary>
    public static string Table(InterceptMode mode) => mode == InterceptMode.Redirect ? "nat" : "mangle";

    /// <summary>What is caught in <paramref name="family"/>: the capture networks, or else the VIPs one by one.</summary>
    public static IReadOnlyList<string> Matches(InterceptConfig config, IEnumerable<IPEndPoint> vips, AddressFamily family)
    {
        var suffix = family == AddressFamily.InterNetwork ? "/32" : "/128";
        return config.Capture is { } capture
            ? [.. capture.Where(n => n.BaseAddress.AddressFamily == family).Select(n => $"-d {n}")]
            : [.. vips.Where(v => v.AddressFamily == family).OrderBy(v => v.ToString(), StringComparer.Ordinal).Select(v => $"-d {v.Address}{suffix} --dport {v.Port}")];
    }

    /// <summary>
    /// iptables-restore --noflush input installing the rules; <paramref name="existingJumps"/> are
    /// the built-in chains that already jump to ours (left alone, so a jump is never doubled).
    /// </summary>
    public static string Install(InterceptConfig config, IReadOnlyList<string> matches, ICollection<string> existingJumps)
    {
        var port = config.Listener.EndPoint.Port;
        var mark = $"0x{config.Mark:x}";
        var text = new StringBuilder();
        text.Append('*').Append(Table(config.Mode)).Append('\n');
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

        foreach (var (builtIn, chain) in Jumps)
        {
            if (!existingJumps.Contains(builtIn))
            {
                text.Append($"-A {builtIn} -p tcp -j {chain}\n");
            }
        }

        return text.Append("COMMIT\n").ToString();
    }

    /// <summary>
    /// iptables-restore --noflush input removing the rules: the jumps found in
    /// <paramref name="saved"/> (iptables-save output of the table), then our chains; null when none is there.
    /// </summary>
    public static string? Remove(InterceptMode mode, string saved)
    {
        var lines = saved.Split('\n', StringSplitOptions.TrimEntries);
        var chains = new[] { OutputChain, PreroutingChain }.Where(c => lines.Contains($":{c} - [0:0]") || lines.Any(l => l.StartsWith($":{c} ", StringComparison.Ordinal))).ToArray();
        var jumps = lines.Where(l => Jumps.Any(j => l.StartsWith($"-A {j.BuiltIn} ", StringComparison.Ordinal) && l.EndsWith($"-j {j.Chain}", StringComparison.Ordinal))).ToArray();
        if (chains.Length == 0 && jumps.Length == 0)
        {
            return null;
        }

        var text = new StringBuilder().Append('*').Append(Table(mode)).Append('\n');
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

    /// <summary>The built-in chains of <paramref name="saved"/> (iptables-save output) that already jump to ours.</summary>
    public static HashSet<string> ExistingJumps(string saved)
    {
        var lines = saved.Split('\n', StringSplitOptions.TrimEntries);
        return [.. Jumps.Where(j => lines.Contains($"-A {j.BuiltIn} -p tcp -j {j.Chain}")).Select(j => j.BuiltIn)];
    }

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
