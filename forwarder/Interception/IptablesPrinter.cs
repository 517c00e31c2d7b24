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
    public static string Print(InterceptConfig config, IEnumerable<IPEndPoint> vips)
    {
        var known = vips.Distinct().ToArray();
        var text = new StringBuilder();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            var matches = IptablesRules.Matches(config, known, family);
            if (family == AddressFamily.InterNetworkV6 && matches.Count == 0)
            {
                continue;
            }

            text.Append(family == AddressFamily.InterNetwork ? "# iptables-restore --noflush\n" : "# ip6tables-restore --noflush\n");
            text.Append(IptablesRules.Install(config, matches, []));
            if (config.Mode == InterceptMode.Tproxy)
            {
                foreach (var route in IptablesRules.TproxyRoutes(family))
                {
                    text.Append("# ip ").Append(string.Join(' ', route)).Append('\n');
                }
            }
        }

        return text.ToString();
    }

    /// <summary>The VIPs a file declares itself, on services and http listeners.</summary>
    public static IEnumerable<IPEndPoint> FileVips(ForwarderConfig config)
        => config.Services.Values.SelectMany(s => s.Vips ?? []).Concat(config.Listeners.SelectMany(l => l.Vips ?? []));
}
