using System.Net;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>The VIPs a config file declares, each with the service or listener that claimed it first and where.</summary>
internal sealed class VipClaims
{
    private readonly Dictionary<IPEndPoint, (string Owner, YamlNode Node, string Path)> _claims = [];

    public IEnumerable<(IPEndPoint Vip, YamlNode Node, string Path)> All => _claims.Select(c => (c.Key, c.Value.Node, c.Value.Path));

    /// <summary>Claims <paramref name="vip"/> for <paramref name="owner"/>; the earlier owner when it was claimed already.</summary>
    public string? TryClaim(IPEndPoint vip, string owner, YamlNode node, string path)
    {
        if (_claims.TryGetValue(vip, out var claim))
        {
            return claim.Owner;
        }

        _claims[vip] = (owner, node, path);
        return null;
    }
}
