using Forwarder.Configuration;

namespace Forwarder.Runtime;

/// <summary>
/// The services a config puts to use: those a tcp listener or an http route sends to, and those
/// exported to peer nodes. Only these get models (pools, balancers, health checks); the others
/// stay config until a reload refers to them.
/// </summary>
internal static class ServiceReferences
{
    public static HashSet<string> Used(ForwarderConfig config)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var listener in config.Listeners)
        {
            if (listener.Service is { } service)
            {
                used.Add(service);
            }

            foreach (var route in listener.Http?.Routes ?? [])
            {
                used.UnionWith(route.Backends.Select(b => b.Service));
            }
        }

        used.UnionWith(config.Services.Values.Where(s => s.Export).Select(s => s.Name));

        // Intercepted connections and datagrams may reach any service with a VIP.
        if (config.Intercept is not null)
        {
            used.UnionWith(config.Services.Values.Where(s => s.Vips is { Count: > 0 } || s.UdpVips is { Count: > 0 }).Select(s => s.Name));
        }

        return used;
    }
}
