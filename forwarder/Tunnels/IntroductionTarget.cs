using System.Net;
using System.Net.Sockets;
using Forwarder.Relay;

namespace Forwarder.Tunnels;

/// <summary>
/// The target of a relay's introduction (<see cref="TunnelRequestKind.Punched"/>,
/// <see cref="TunnelRequestKind.TcpPunched"/>), ADDRESS/TOKEN: the address the relay saw the
/// introduced node's token come from, as <see cref="IPEndPoint.ToString"/> writes it
/// (<c>203.0.113.7:4000</c>, <c>[2001:db8::7]:4000</c>), and the token the relay issued the far
/// node, in hex. The far node sends probes to that address and the token from its own
/// port: anything else, it refuses with a reason rather than probing where it should not.
/// </summary>
internal static class IntroductionTarget
{
    /// <summary>The longest target there is: a bracketed IPv6 address with a scope, a port, '/', the token.</summary>
    public const int MaxLength = 64 + 1 + (RelayRendezvous.TokenLength * 2);

    public static string Format(IPEndPoint asker, string token) => $"{asker}/{token}";

    /// <summary>
    /// Parses <paramref name="target"/>: the introduced node's address, and the message that
    /// carries the token after <paramref name="magic"/>; false, with <paramref name="error"/>
    /// saying what is wrong, for anything the relay does not write. Never throws.
    /// </summary>
    public static bool TryParse(string? target, ReadOnlySpan<byte> magic, out IPEndPoint asker, out byte[] message, out string error)
    {
        asker = null!;
        message = null!;
        if (string.IsNullOrEmpty(target))
        {
            error = "an empty target";
            return false;
        }

        if (target.Length > MaxLength)
        {
            error = $"{target.Length} characters, longer than ADDRESS/TOKEN can be ({MaxLength})";
            return false;
        }

        var slash = target.IndexOf('/');
        if (slash < 0 || slash != target.LastIndexOf('/'))
        {
            error = slash < 0 ? "no '/' between the address and the token" : "more than one '/'";
            return false;
        }

        var address = target.AsSpan(0, slash);
        var token = target[(slash + 1)..];
        if (address.IsEmpty || token.Length == 0)
        {
            error = address.IsEmpty ? "no address before the '/'" : "no token after the '/'";
            return false;
        }

        if (RelayRendezvous.Message(magic, token) is not { } built)
        {
            error = $"a token that is not {RelayRendezvous.TokenLength * 2} hex digits";
            return false;
        }

        // Only the form the relay writes: IPEndPoint also takes "127.1", a missing port (as 0), and the like.
        if (!IPEndPoint.TryParse(address, out var parsed) || !address.SequenceEqual(parsed.ToString().AsSpan()))
        {
            error = "an address that is not an IP address and port as the relay writes them (203.0.113.7:4000, [2001:db8::7]:4000)";
            return false;
        }

        if (parsed.Port == 0 || !Unicast(parsed.Address))
        {
            error = parsed.Port == 0 ? "port 0" : "an address that is not one host's (unspecified, broadcast or multicast)";
            return false;
        }

        asker = RelayRendezvous.Unmapped(parsed);
        message = built;
        error = string.Empty;
        return true;
    }

    private static bool Unicast(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            return !address.Equals(IPAddress.IPv6Any) && !address.IsIPv6Multicast;
        }

        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.Broadcast) && bytes[0] is < 224 or > 239;
    }
}
