using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;

namespace Forwarder.Interception;

/// <summary>
/// Where an intercepted connection was headed before iptables turned it to the forwarder:
/// SO_ORIGINAL_DST (netfilter's conntrack entry) after REDIRECT, the socket's own local address
/// after TPROXY. Read through <see cref="Socket.GetRawSocketOption"/>, which is getsockopt(2)
/// without reflection or marshalling stubs, so it is NativeAOT-safe as it stands.
/// </summary>
internal static class OriginalDestination
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;

    /// <summary>SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h).</summary>
    private const int SoOriginalDst = 80;

    /// <summary>The original destination, IPv4-mapped addresses unmapped; null when the connection was not redirected here.</summary>
    public static IPEndPoint? Read(Socket socket, InterceptMode mode)
    {
        if (socket.LocalEndPoint is not IPEndPoint local)
        {
            return null;
        }

        if (mode == InterceptMode.Tproxy)
        {
            return InterceptConfigReader.Normalize(local);
        }

        var ipv4 = local.AddressFamily == AddressFamily.InterNetwork || local.Address.IsIPv4MappedToIPv6;
        Span<byte> address = stackalloc byte[28];
        int length;
        try
        {
            length = socket.GetRawSocketOption(ipv4 ? SolIp : SolIpv6, SoOriginalDst, address);
        }
        catch (SocketException)
        {
            // ENOENT: no conntrack entry (conntrack not loaded), so nothing redirected it either.
            return null;
        }

        // Conntrack reports the tuple as it came for connections nothing translated: those were made to this port directly.
        var original = Parse(address[..length]);
        return original is null || original.Equals(InterceptConfigReader.Normalize(local)) ? null : original;
    }

    /// <summary>A sockaddr_in or sockaddr_in6 as the kernel writes it (family in host order, port in network order).</summary>
    internal static IPEndPoint? Parse(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 8)
        {
            return null;
        }

        var family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);
        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        return family switch
        {
            2 => new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), port),
            10 when sockaddr.Length >= 24 => InterceptConfigReader.Normalize(new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16)), port)),
            _ => null,
        };
    }
}
