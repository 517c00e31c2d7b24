using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;

namespace Forwarder.Interception;

/// <summary>
/// What <c>forwarder iptables --print</c> shows: the rules a fresh node gets for a config, per
/// address family, as iptables-restore input (and the ip commands TPROXY needs). VIPs that only
/// discovery will bring are not in a file; with <c>capture</c> networks the rules name those instead.
/// </summary>
internal static class IptablesPrinter
{
    /// <summary>The placeholder for a UDP VIP's port, which the forwarder picks when it binds the VIP's listener.</summary>
    public const string UdpPort = "UDP_PORT";

    public static string Print(InterceptConfig config, IEnumerable<IPEndPoint> vips, IEnumerable<IPEndPoint> udpVips)
    {
        var known = vips.Distinct().ToArray();
        var udp = udpVips.Distinct().Select(v => (v, UdpPort)).ToArray();
        var text = new StringBuilder();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            var tables = IptablesRules.Tables(config, IptablesRules.Matches(config, known, family), IptablesRules.UdpRedirects(udp, family));
            if (family == AddressFamily.InterNetwork && tables.Count == 0)
            {
                tables[IptablesRules.Table(config.Mode)] = ([], []);
            }

            foreach (var (table, (tcp, redirects)) in tables.OrderBy(t => t.Key == IptablesRules.Table(config.Mode) ? 0 : 1))
            {
                text.Append(family == AddressFamily.InterNetwork ? "# iptables-restore --noflush\n" : "# ip6tables-restore --noflush\n");
                if (redirects.Count > 0)
                {
                    text.Append($"# {UdpPort}: the ephemeral port the forwarder binds for each UDP VIP at start; iptables-save on a running node shows it\n");
                }

                text.Append(IptablesRules.Install(config, table, tcp, redirects, []));
            }

            if (config.Mode == InterceptMode.Tproxy && tables.ContainsKey(IptablesRules.Table(config.Mode)))
            {
                foreach (var route in IptablesRules.TproxyRoutes(family))
                {
                    text.Append("# ip ").Append(string.Join(' ', route)).Append('\n');
                }
            }
        }

        return text.ToString();
    }

    /// <summary>The TCP VIPs a file declares itself, on services and http listeners.</summary>
    public static IEnumerable<IPEndPoint> FileVips(ForwarderConfig config)
        => config.Services.Values.SelectMany(s => s.Vips ?? []).Concat(config.Listeners.SelectMany(l => l.Vips ?? []));

    /// <summary>The UDP VIPs a file declares itself, on services.</summary>
    public static IEnumerable<IPEndPoint> FileUdpVips(ForwarderConfig config) => config.Services.Values.SelectMany(s => s.UdpVips ?? []);
}
