using System.Net.Sockets;
using Forwarder.Configuration;
using Microsoft.Extensions.Logging;

namespace Forwarder.Interception;

/// <summary>
/// Keeps the forwarder's iptables rules in step with the applied config: installed at start,
/// refilled when the VIPs change (reload, discovery), removed when interception is turned off
/// and on exit. An address family with nothing to catch is left alone, so a node without
/// ip6tables needs none until an IPv6 VIP appears.
/// </summary>
internal sealed partial class InterceptRuleManager(IptablesRunner runner, InterceptMetrics metrics, ILogger logger)
{
    private static readonly AddressFamily[] Families = [AddressFamily.InterNetwork, AddressFamily.InterNetworkV6];

    /// <summary>The config and matches of each family the rules were installed for.</summary>
    private readonly Dictionary<AddressFamily, (InterceptConfig Config, string Matches)> _installed = [];

    /// <summary>Brings the rules in line with <paramref name="table"/> (null: interception off).</summary>
    /// <exception cref="InterceptRulesException">An iptables or ip command failed; the rules of that family are as they were.</exception>
    public async Task ApplyAsync(InterceptTable? table)
    {
        var config = table?.Config is { ManageRules: true } managed ? managed : null;
        foreach (var family in Families)
        {
            var matches = config is null ? [] : IptablesRules.Matches(config, table!.Vips, family);
            var installed = _installed.GetValueOrDefault(family);
            if (config is null || (installed.Config is { } old && old.Mode != config.Mode))
            {
                await RemoveAsync(family).ConfigureAwait(false);
            }

            if (config is null || (matches.Count == 0 && !_installed.ContainsKey(family)))
            {
                continue;
            }

            var key = string.Join('\n', matches);
            if (_installed.TryGetValue(family, out var current) && current.Config == config && current.Matches == key)
            {
                continue;
            }

            try
            {
                var saved = await runner.SaveAsync(family, IptablesRules.Table(config.Mode)).ConfigureAwait(false);
                await runner.RestoreAsync(family, IptablesRules.Install(config, matches, IptablesRules.ExistingJumps(saved))).ConfigureAwait(false);
                if (config.Mode == InterceptMode.Tproxy && !_installed.ContainsKey(family))
                {
                    await AddTproxyRoutesAsync(family).ConfigureAwait(false);
                }
            }
            catch (InterceptRulesException)
            {
                metrics.RulesFailed();
                throw;
            }

            _installed[family] = (config, key);
            LogInstalled(logger, family == AddressFamily.InterNetwork ? "iptables" : "ip6tables", IptablesRules.Table(config.Mode), matches.Count);
        }

        metrics.RulesApplied(_installed.Count > 0);
    }

    /// <summary>Removes every rule this process installed (on exit); failures are logged, not thrown.</summary>
    public async Task RemoveAllAsync()
    {
        foreach (var family in Families)
        {
            try
            {
                await RemoveAsync(family).ConfigureAwait(false);
            }
            catch (InterceptRulesException ex)
            {
                metrics.RulesFailed();
                LogRemoveFailed(logger, ex.Message);
            }
        }

        metrics.RulesApplied(false);
    }

    private async Task RemoveAsync(AddressFamily family)
    {
        if (!_installed.Remove(family, out var installed))
        {
            return;
        }

        var mode = installed.Config.Mode;
        var saved = await runner.SaveAsync(family, IptablesRules.Table(mode)).ConfigureAwait(false);
        if (IptablesRules.Remove(mode, saved) is { } removal)
        {
            await runner.RestoreAsync(family, removal).ConfigureAwait(false);
        }

        if (mode == InterceptMode.Tproxy)
        {
            foreach (var add in IptablesRules.TproxyRoutes(family))
            {
                await IgnoringFailureAsync([.. add.Select(a => a == "add" ? "del" : a)]).ConfigureAwait(false);
            }
        }

        LogRemoved(logger, family == AddressFamily.InterNetwork ? "iptables" : "ip6tables", IptablesRules.Table(mode));
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

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Interception: {Tool} {Table} rules installed ({Matches} destinations caught)")]
    private static partial void LogInstalled(ILogger logger, string tool, string table, int matches);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Interception: {Tool} {Table} rules removed")]
    private static partial void LogRemoved(ILogger logger, string tool, string table);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Interception: removing the rules failed: {Reason}")]
    private static partial void LogRemoveFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Interception: {Reason}")]
    private static partial void LogRouteSkipped(ILogger logger, string reason);
}
