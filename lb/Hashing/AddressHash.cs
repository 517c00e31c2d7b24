using System.IO.Hashing;
using System.Net;

namespace Forwarder.LoadBalancing.Hashing;

/// <summary>The stable hash of a client address, the same for L4 and L7 so a client keeps its endpoint on both.</summary>
public static class AddressHash
{
    public static ulong Of(IPAddress address)
    {
        // An IPv4 client on a dual-stack listener hashes as the IPv4 address it is.
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        return XxHash64.HashToUInt64(bytes[..written]);
    }
}
