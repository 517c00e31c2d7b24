using System.Net;

namespace Forwarder.Relay;

/// <summary>
/// What per-source limits count by: an IPv4 address (an IPv4-mapped IPv6 one as the IPv4 it
/// stands for, so a dual-mode socket does not give a host two quotas), or an IPv6 address's /64
/// prefix, since one host is routinely given a whole /64 and can send from any address in it.
/// </summary>
internal static class SourceKey
{
    public static IPAddress Of(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }
}
