using System.Net;
using Forwarder.Dns;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads the <c>dns</c> section: where the service DNS server listens and where other names go.</summary>
internal static class DnsConfigReader
{
    private const string Section = "dns";

    /// <param name="domain">The cluster domain: cluster.domain, or cluster.local without a cluster section.</param>
    public static DnsConfig? Read(YamlFieldReader reader, YamlNode node, string domain)
    {
        var fields = reader.Mapping(node, Section, "listen", "upstreams", "cacheSize", "ttl", "upstreamTimeout");
        if (fields is null)
        {
            return null;
        }

        var listen = reader.String(fields, Section, "listen", required: true, node);
        IPEndPoint? endPoint = null;
        if (listen is not null && !ValueParsers.TryParseListenAddress(listen, out endPoint))
        {
            reader.Error(fields["listen"], $"{Section}.listen", $"expected IP:PORT such as 127.0.0.53:53 (UDP and TCP bind it; port 0 picks a free one), got '{listen}'");
            endPoint = null;
        }

        var upstreams = ReadUpstreams(reader, fields);
        var cacheSize = reader.Int(fields, Section, "cacheSize", DnsConfig.DefaultCacheSize, 0, 10_000_000);
        var ttl = reader.Duration(fields, Section, "ttl", DnsConfig.DefaultTtl, TimeSpan.Zero);
        var timeout = reader.Duration(fields, Section, "upstreamTimeout", DnsConfig.DefaultUpstreamTimeout, TimeSpan.FromMilliseconds(10));
        if (ttl > TimeSpan.FromDays(1))
        {
            reader.Error(fields["ttl"], $"{Section}.ttl", "expected at most 1d: clients would keep stale service addresses that long");
        }

        return endPoint is null ? null : new DnsConfig(listen!, endPoint, upstreams, cacheSize, ttl, timeout, domain.TrimEnd('.').ToLowerInvariant());
    }

    private static List<IPEndPoint> ReadUpstreams(YamlFieldReader reader, Dictionary<string, YamlNode> fields)
    {
        const string Path = $"{Section}.upstreams";
        List<IPEndPoint> upstreams = [];
        if (!fields.TryGetValue("upstreams", out var node) || reader.Sequence(node, Path) is not { } sequence)
        {
            return upstreams;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            if (item is YamlScalarNode { Value: { } text } && TryParseUpstream(text, out var upstream))
            {
                upstreams.Add(upstream);
            }
            else
            {
                reader.Error(item, $"{Path}[{i}]", $"expected a resolver's IP or IP:PORT such as 192.0.2.1 or [2001:db8::1]:5353, got '{(item as YamlScalarNode)?.Value}'");
            }
        }

        return upstreams;
    }

    /// <summary>An IP literal (port 53) or IP:PORT.</summary>
    public static bool TryParseUpstream(string text, out IPEndPoint upstream)
    {
        if (IPAddress.TryParse(text, out var address) && !text.StartsWith('['))
        {
            upstream = new IPEndPoint(address, 53);
            return true;
        }

        return ValueParsers.TryParseListenAddress(text, out upstream) && upstream.Port != 0 && !upstream.Address.Equals(IPAddress.IPv6Any);
    }
}
