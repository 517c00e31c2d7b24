using System.Net;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>The VIPs a config file declares, each with the service or listener that claimed it first and where.</summary>
internal sealed class VipClaims
{
    /// <summary>Keyed by protocol too: 53/tcp and 53/udp of one address are two VIPs, which may have two owners.</summary>
    private readonly Dictionary<(IPEndPoint Vip, bool Udp), (string Owner, YamlNode Node, string Path)> _claims = [];

    public IEnumerable<(IPEndPoint Vip, bool Udp, YamlNode Node, string Path)> All => _claims.Select(c => (c.Key.Vip, c.Key.Udp, c.Value.Node, c.Value.Path));

    /// <summary>Claims <paramref name="vip"/> for <paramref name="owner"/>; the earlier owner when it was claimed already.</summary>
    public string? TryClaim(IPEndPoint vip, bool udp, string owner, YamlNode node, string path)
    {
        if (_claims.TryGetValue((vip, udp), out var claim))
        {
            return claim.Owner;
        }

        _claims[(vip, udp)] = (owner, node, path);
        return null;
    }
}
