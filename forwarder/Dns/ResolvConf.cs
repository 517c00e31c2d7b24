using System.Net;

namespace Forwarder.Dns;

/// <summary>The node's resolvers: the nameserver lines of /etc/resolv.conf.</summary>
internal static class ResolvConf
{
    public const string DefaultPath = "/etc/resolv.conf";

    /// <summary>The nameservers (port 53), leaving out <paramref name="self"/> so the server never forwards to itself.</summary>
    public static List<IPEndPoint> Nameservers(string path, IPEndPoint self)
    {
        List<IPEndPoint> nameservers = [];
        if (!File.Exists(path))
        {
            return nameservers;
        }

        foreach (var line in File.ReadLines(path))
        {
            var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);

            // A zone index (fe80::1%eth0) parses too; the address is what matters.
            if (fields is ["nameserver", var text, ..] && IPAddress.TryParse(text, out var address))
            {
                var nameserver = new IPEndPoint(address, 53);
                if (!nameserver.Equals(self) && !nameservers.Contains(nameserver))
                {
                    nameservers.Add(nameserver);
                }
            }
        }

        return nameservers;
    }
}
