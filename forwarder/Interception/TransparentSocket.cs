using System.Net.Sockets;

namespace Forwarder.Interception;

/// <summary>
/// IP_TRANSPARENT (and IPV6_TRANSPARENT) on the intercept listener in TPROXY mode: the kernel
/// then hands it connections addressed to other hosts (the VIPs), unchanged. Needs CAP_NET_ADMIN.
/// </summary>
internal static class TransparentSocket
{
    private const int SolIp = 0;
    private const int IpTransparent = 19;
    private const int SolIpv6 = 41;
    private const int Ipv6Transparent = 75;

    public static void Enable(Socket socket)
    {
        ReadOnlySpan<byte> on = [1, 0, 0, 0];
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.SetRawSocketOption(SolIpv6, Ipv6Transparent, on);
        }

        // A dual-mode socket takes IPv4 connections too, so it is made transparent for both.
        if (socket.AddressFamily == AddressFamily.InterNetwork || socket.DualMode)
        {
            socket.SetRawSocketOption(SolIp, IpTransparent, on);
        }
    }
}
