using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Microsoft.Extensions.Logging;

namespace Forwarder.Interception;

/// <summary>
/// Keeps the forwarder's iptables rules in step with the applied config: installed at start,
/// refilled when the VIPs or their udp ports change (reload, discovery), removed when
/// interception is turned off and on exit. Each family and table is handled on its own (tproxy
/// mode has TCP in mangle, UDP in nat); one with nothing to catch is left alone, so a node
/// without ip6tables needs none until an IPv6 VIP appears.
/// </summary>
internal sealed partial class InterceptRuleManager(IptablesRunner runner, InterceptMetrics metrics, ILogger logger)
{
    private static readonly AddressFamily[] Families = [AddressFamily.InterNetwork, AddressFamily.InterNetworkV6];

    /// <summary>The rules installed, per family and table, as Install renders them without existing jumps.</summary>
    private readonly Dictionary<(AddressFamily Family, string Table), string> _installed = [];

    /// <summary>Brings the rules in line with <paramref name="table"/> (null: interception off) and the ports of its UDP VIPs.</summary>
    /// <exception cref="InterceptRulesException">An iptables or ip command failed; the rules of that family and table are as they were.</exception>
    public async Task ApplyAsync(InterceptTable? table, IReadOnlyDictionary<IPEndPoint, int> udpPorts)
    {
        var config = table?.Config is { ManageRules: true } managed ? managed : null;
        var ports = udpPorts.Select(p => (p.Key, p.Value.ToString(CultureInfo.InvariantCulture))).ToArray();
        foreach (var family in Families)
        {
            var wanted = config is null
                ? []
                : IptablesRules.Tables(config, IptablesRules.Matches(config, table!.Vips, family), IptablesRules.UdpRedirects(ports, family));
            foreach (var (_, name) in _installed.Keys.Where(k => k.Family == family && !wanted.ContainsKey(k.Table)).ToArray())
            {
                await RemoveAsync(family, name).ConfigureAwait(false);
            }

            foreach (var (name, (tcp, udp)) in wanted)
            {
                var key = IptablesRules.Install(config!, name, tcp, udp, []);
                var fresh = !_installed.TryGetValue((family, name), out var current);
                if (current == key)
                {
                    continue;
                }

                try
                {
                    var saved = await runner.SaveAsync(family, name).ConfigureAwait(false);
                    await runner.RestoreAsync(family, IptablesRules.Install(config!, name, tcp, udp, IptablesRules.ExistingJumps(saved))).ConfigureAwait(false);
                    if (name == IptablesRules.Table(InterceptMode.Tproxy) && fresh)
                    {
                        await AddTproxyRoutesAsync(family).ConfigureAwait(false);
                    }
                }
                catch (InterceptRulesException)
                {
                    metrics.RulesFailed();
                    throw;
                }

                _installed[(family, name)] = key;
                LogInstalled(logger, Tool(family), name, tcp.Count, udp.Count);
            }
        }

        metrics.RulesApplied(_installed.Count > 0);
    }

    /// <summary>Removes every rule this process installed (on exit); failures are logged, not thrown.</summary>
    public async Task RemoveAllAsync()
    {
        foreach (var (family, name) in _installed.Keys.ToArray())
        {
            try
            {
                await RemoveAsync(family, name).ConfigureAwait(false);
            }
            catch (InterceptRulesException ex)
            {
                metrics.RulesFailed();
                LogRemoveFailed(logger, ex.Message);
            }
        }

        metrics.RulesApplied(false);
    }

    private static string Tool(AddressFamily family) => family == AddressFamily.InterNetwork ? "iptables" : "ip6tables";

    private async Task RemoveAsync(AddressFamily family, string table)
    {
        if (!_installed.Remove((family, table)))
        {
            return;
        }

        var saved = await runner.SaveAsync(family, table).ConfigureAwait(false);
        if (IptablesRules.Remove(table, saved) is { } removal)
        {
            await runner.RestoreAsync(family, removal).ConfigureAwait(false);
        }

        if (table == IptablesRules.Table(InterceptMode.Tproxy))
        {
            foreach (var add in IptablesRules.TproxyRoutes(family))
            {
                await IgnoringFailureAsync([.. add.Select(a => a == "add" ? "del" : a)]).ConfigureAwait(false);
            }
        }

        LogRemoved(logger, Tool(family), table);
    }

    /// <summary>The rule and route may be there from a run that crashed; adding them twice fails, which is fine.</summary>
    private async Task AddTproxyRoutesAsync(AddressFamily family)
    {
        foreach (var arguments in IptablesRules.TproxyRoutes(family))
        {
            await IgnoringFailureAsync(arguments).ConfigureAwait(false);
        }
    }

    private async Task IgnoringFailureAsync(IReadOnlyList<string> arguments)
    {
        try
        {
            await runner.IpAsync(arguments).ConfigureAwait(false);
        }
        catch (InterceptRulesException ex)
        {
            LogRouteSkipped(logger, ex.Message);
        }
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Interception: {Tool} {Table} rules installed ({Matches} tcp destinations, {UdpVips} udp VIPs caught)")]
    private static partial void LogInstalled(ILogger logger, string tool, string table, int matches, int udpVips);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Interception: {Tool} {Table} rules removed")]
    private static partial void LogRemoved(ILogger logger, string tool, string table);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Interception: removing the rules failed: {Reason}")]
    private static partial void LogRemoveFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Interception: {Reason}")]
    private static partial void LogRouteSkipped(ILogger logger, string reason);
}
