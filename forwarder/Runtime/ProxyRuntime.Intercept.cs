using Forwarder.Configuration;
using Forwarder.Interception;

namespace Forwarder.Runtime;

/// <content>Interception: the iptables rules follow the VIPs of each applied config.</content>
internal sealed partial class ProxyRuntime
{
    private InterceptRuleManager? _interceptRules;
    private InterceptUdpListeners? _interceptUdpListeners;

    /// <summary>The udp listeners of UDP VIPs, made on first use.</summary>
    private InterceptUdpListeners InterceptUdp => _interceptUdpListeners ??= new InterceptUdpListeners(metrics, time, logger);

    /// <summary>The udp listener models of the config's UDP VIPs; none without an intercept section.</summary>
    private static IReadOnlyDictionary<System.Net.IPEndPoint, ListenerModel> UdpVipTargets(ForwarderConfig config, Dictionary<string, ListenerModel> models)
        => config.Intercept is { } intercept && models[intercept.Listener.BindingKey].Intercept is { } table
            ? table.UdpTargets
            : System.Collections.Frozen.FrozenDictionary<System.Net.IPEndPoint, ListenerModel>.Empty;

    /// <summary>
    /// Installs or refills the rules for the config just committed. At start a failure fails the
    /// start (a node proxy that catches nothing must not look healthy); on a reload or a discovery
    /// change it is logged and counted, and the rules stay as they were.
    /// </summary>
    private async Task ApplyInterceptRulesAsync(ForwarderConfig config, Dictionary<string, ListenerModel> models)
    {
        var table = config.Intercept is { } intercept ? models[intercept.Listener.BindingKey].Intercept : null;
        if (table is not null)
        {
            metrics.Intercept.Enable();
            metrics.Intercept.VipsKnown(table.Vips.Count(), table.UdpTargets.Count);
        }

        if (table is null && _interceptRules is null)
        {
            return;
        }

        _interceptRules ??= new InterceptRuleManager(new IptablesRunner(), metrics.Intercept, logger);
        try
        {
            await _interceptRules.ApplyAsync(table, InterceptUdp.Ports).ConfigureAwait(false);
        }
        catch (InterceptRulesException ex) when (_ready)
        {
            LogInterceptRulesFailed(logger, ex.Message);
        }
        catch (InterceptRulesException ex)
        {
            throw new ListenerBindException($"{config.Source}: intercept: the iptables rules could not be installed: {ex.Message}", ex);
        }
    }

    /// <summary>Takes out the rules on exit, once the listeners stopped.</summary>
    private Task RemoveInterceptRulesAsync() => _interceptRules?.RemoveAllAsync() ?? Task.CompletedTask;

    private Task StopInterceptUdpAsync() => _interceptUdpListeners?.StopAsync() ?? Task.CompletedTask;

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 125, Level = Microsoft.Extensions.Logging.LogLevel.Error, Message = "Interception rules not updated; the ones in place stay: {Reason}")]
    private static partial void LogInterceptRulesFailed(Microsoft.Extensions.Logging.ILogger logger, string reason);
}
