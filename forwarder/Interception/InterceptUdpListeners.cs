using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Udp;
using Microsoft.Extensions.Logging;

namespace Forwarder.Interception;

/// <summary>
/// The udp listeners of the UDP VIPs, as kube-proxy's userspace mode had them: each VIP gets an
/// ephemeral port, which a nat REDIRECT rule sends the VIP's datagrams to, and conntrack turns the
/// replies' source back into the VIP. Two sockets share that port: one on the wildcard address
/// takes what PREROUTING redirected (to the address of the interface it came in on, which is also
/// the source a reply to that client gets), one on loopback takes what OUTPUT redirected (to
/// 127.0.0.1 or ::1), so the reply leaves from the address conntrack expects and the client sees
/// the VIP; from the wildcard socket it would leave from the node's own address and reach the
/// client unchanged. A VIP that stays across applies keeps its listeners, its port and its sessions.
/// </summary>
internal sealed class InterceptUdpListeners(ForwarderMetrics metrics, TimeProvider time, ILogger logger)
{
    private readonly Dictionary<IPEndPoint, Pair> _pairs = [];

    /// <summary>The local port each UDP VIP's datagrams are redirected to, for the rules.</summary>
    public IReadOnlyDictionary<IPEndPoint, int> Ports
    {
        get
        {
            lock (_pairs)
            {
                return _pairs.ToDictionary(p => p.Key, p => p.Value.Port);
            }
        }
    }

    /// <summary>Binds the listeners of the VIPs in <paramref name="targets"/> that have none yet.</summary>
    /// <exception cref="ListenerBindException">A port cannot be bound; those bound here are closed again.</exception>
    public Dictionary<IPEndPoint, Pair> Bind(IReadOnlyDictionary<IPEndPoint, ListenerModel> targets, string source)
    {
        var added = new Dictionary<IPEndPoint, Pair>();
        foreach (var (vip, model) in targets)
        {
            lock (_pairs)
            {
                if (_pairs.ContainsKey(vip))
                {
                    continue;
                }
            }

            try
            {
                added[vip] = BindPair(model);
            }
            catch (SocketException ex)
            {
                Abandon(added);
                throw new ListenerBindException($"{source}: no udp port could be bound for VIP {vip}/udp: {ex.Message}", ex);
            }
        }

        return added;
    }

    /// <summary>Closes listeners bound for a config that was not applied.</summary>
    public static void Abandon(Dictionary<IPEndPoint, Pair> added)
    {
        foreach (var pair in added.Values)
        {
            pair.Routed.Abandon();
            pair.Local.Abandon();
        }
    }

    /// <summary>Makes <paramref name="targets"/> the served VIPs: new ones start, gone ones stop, kept ones take the new model.</summary>
    public async Task CommitAsync(IReadOnlyDictionary<IPEndPoint, ListenerModel> targets, Dictionary<IPEndPoint, Pair> added, int? mark)
    {
        List<Pair> removed = [];
        lock (_pairs)
        {
            foreach (var (vip, pair) in _pairs)
            {
                if (targets.TryGetValue(vip, out var model))
                {
                    foreach (var host in pair.Hosts)
                    {
                        host.Model = model;
                        host.UpstreamMark = mark;
                        host.EndSessionsOfRemovedEndpoints();
                    }
                }
                else
                {
                    removed.Add(pair);
                }
            }

            foreach (var vip in _pairs.Keys.Where(v => !targets.ContainsKey(v)).ToArray())
            {
                _pairs.Remove(vip);
            }

            foreach (var (vip, pair) in added)
            {
                _pairs[vip] = pair;
                foreach (var host in pair.Hosts)
                {
                    host.UpstreamMark = mark;
                    host.Start();
                }
            }
        }

        await Task.WhenAll(removed.SelectMany(p => p.Hosts).Select(h => h.StopAsync(UdpSessionEnd.Reload))).ConfigureAwait(false);
    }

    /// <summary>Stops every listener: shutdown.</summary>
    public async Task StopAsync()
    {
        Pair[] pairs;
        lock (_pairs)
        {
            pairs = [.. _pairs.Values];
            _pairs.Clear();
        }

        await Task.WhenAll(pairs.SelectMany(p => p.Hosts).Select(h => h.StopAsync(UdpSessionEnd.Shutdown))).ConfigureAwait(false);
    }

    private Pair BindPair(ListenerModel model)
    {
        var any = model.Config.EndPoint;
        var routed = UdpListenerHost.Bind(model, metrics, time, logger, any, shared: true);
        try
        {
            var loopback = any.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Loopback : IPAddress.IPv6Loopback;
            return new Pair(routed, UdpListenerHost.Bind(model, metrics, time, logger, new IPEndPoint(loopback, routed.BoundEndPoint.Port), shared: true));
        }
        catch
        {
            routed.Abandon();
            throw;
        }
    }

    /// <summary>The two listeners of one VIP, on one port: <paramref name="Routed"/> on the wildcard address, <paramref name="Local"/> on loopback.</summary>
    internal sealed record Pair(UdpListenerHost Routed, UdpListenerHost Local)
    {
        public int Port => Routed.BoundEndPoint.Port;

        public UdpListenerHost[] Hosts => [Routed, Local];
    }
}
