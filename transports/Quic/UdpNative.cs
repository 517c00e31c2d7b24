using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Forwarder.Transports.Quic;

/// <summary>
/// sendmsg/recvmsg with Linux's UDP segmentation offloads, which <see cref="Socket"/> cannot express:
/// a UDP_SEGMENT control message sends a run of equal-sized datagrams in one call (GSO), and UDP_GRO
/// hands back runs of them coalesced, with the segment size in a control message.
/// </summary>
internal static unsafe partial class UdpNative
{
    public const int MaxSegments = 44; // 44 * 1452 bytes stays under the 64 KiB a UDP send may carry
    public const int Interrupted = 4;  // EINTR
    public const int WouldBlock = 11;  // EAGAIN
    public const int ConnectionRefused = 111; // ECONNREFUSED
    public const int IoError = 5;      // EIO
    public const int Invalid = 22;     // EINVAL
    private const int SolUdp = 17;
    private const int UdpSegment = 103;
    private const int UdpGro = 104;
    private const int SolIp = 0;
    private const int IpTtl = 2;
    private const int SolIpv6 = 41;
    private const int Ipv6HopLimit = 52;
    private const int DontWait = 0x40; // MSG_DONTWAIT: .NET may still have the descriptor in blocking mode
    private const int Truncated = 0x20; // MSG_TRUNC
    private const int CmsgHeader = 16; // cmsghdr on LP64: size_t len, int level, int type
    private const int ControlSpace = 64;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(nint fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(nint fd, MsgHdr* message, int flags);

    /// <summary>Asks the kernel to coalesce received datagrams; false where UDP_GRO is not supported.</summary>
    public static bool TryEnableGro(Socket socket)
    {
        try
        {
            socket.SetRawSocketOption(SolUdp, UdpGro, BitConverter.GetBytes(1));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Sends <paramref name="length"/> bytes as datagrams of <paramref name="segmentSize"/> (the last may be
    /// shorter) in one call when <paramref name="segmentSize"/> is less than the length.
    /// </summary>
    /// <returns>0, or the errno.</returns>
    public static int Send(nint fd, byte* data, int length, int segmentSize, void* peer, uint peerLength)
    {
        var iov = new IoVec { Base = data, Length = (nuint)length };
        var control = stackalloc byte[ControlSpace];
        var message = new MsgHdr { Name = peer, NameLength = peerLength, Iov = &iov, IovLength = 1 };
        if (segmentSize < length)
        {
            *(nuint*)control = CmsgHeader + sizeof(ushort);
            *(int*)(control + 8) = SolUdp;
            *(int*)(control + 12) = UdpSegment;
            *(ushort*)(control + CmsgHeader) = (ushort)segmentSize;
            message.Control = control;
            message.ControlLength = CmsgHeader + 8; // CMSG_SPACE(sizeof(uint16_t))
        }

        return SendMessage(fd, &message);
    }

    /// <summary>
    /// Sends one datagram that dies after <paramref name="hopLimit"/> hops, set for this datagram alone
    /// (IP_TTL or IPV6_HOPLIMIT ancillary data), so the socket's other traffic keeps its usual TTL.
    /// </summary>
    /// <param name="ipv4">The datagram leaves as IPv4: an IPv4 socket, or an IPv6 one sending to a mapped address.</param>
    /// <returns>0, or the errno.</returns>
    public static int SendWithHopLimit(nint fd, byte* data, int length, void* peer, uint peerLength, bool ipv4, int hopLimit)
    {
        var iov = new IoVec { Base = data, Length = (nuint)length };
        var control = stackalloc byte[ControlSpace];
        *(nuint*)control = CmsgHeader + sizeof(int);
        *(int*)(control + 8) = ipv4 ? SolIp : SolIpv6;
        *(int*)(control + 12) = ipv4 ? IpTtl : Ipv6HopLimit;
        *(int*)(control + CmsgHeader) = hopLimit;
        var message = new MsgHdr
        {
            Name = peer, NameLength = peerLength, Iov = &iov, IovLength = 1,
            Control = control, ControlLength = CmsgHeader + 8, // CMSG_SPACE(sizeof(int))
        };
        return SendMessage(fd, &message);
    }

    private static int SendMessage(nint fd, MsgHdr* message)
    {
        while (true)
        {
            if (SendMsg(fd, message, 0) >= 0)
            {
                return 0;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Interrupted)
            {
                return errno;
            }
        }
    }

    /// <summary>What <see cref="Socket"/> would report for <paramref name="errno"/>, for the errors a datagram send meets.</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        1 or 13 => SocketError.AccessDenied,             // EPERM (a firewall), EACCES
        22 => SocketError.InvalidArgument,               // EINVAL
        90 => SocketError.MessageSize,                   // EMSGSIZE
        97 => SocketError.AddressFamilyNotSupported,     // EAFNOSUPPORT
        99 => SocketError.AddressNotAvailable,           // EADDRNOTAVAIL
        101 => SocketError.NetworkUnreachable,           // ENETUNREACH
        105 => SocketError.NoBufferSpaceAvailable,       // ENOBUFS
        111 => SocketError.ConnectionRefused,            // ECONNREFUSED (an earlier datagram's ICMP error)
        113 => SocketError.HostUnreachable,              // EHOSTUNREACH
        WouldBlock => SocketError.WouldBlock,
        _ => SocketError.SocketError,
    };

    /// <summary>Receives one datagram or one coalesced run of them without blocking.</summary>
    /// <returns>The byte count (a truncated datagram counts as 0), or minus the errno.</returns>
    public static int Receive(nint fd, byte* buffer, int capacity, byte* peer, uint* peerLength, out int segmentSize)
    {
        var iov = new IoVec { Base = buffer, Length = (nuint)capacity };
        var control = stackalloc byte[ControlSpace];
        var message = new MsgHdr
        {
            Name = peer, NameLength = peer is null ? 0 : *peerLength, Iov = &iov, IovLength = 1,
            Control = control, ControlLength = ControlSpace,
        };
        nint received;
        while ((received = RecvMsg(fd, &message, DontWait)) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != Interrupted)
            {
                segmentSize = 0;
                return -errno;
            }
        }

        if (peer is not null)
        {
            *peerLength = message.NameLength;
        }

        segmentSize = (int)received;
        for (var offset = 0; offset + CmsgHeader <= (int)message.ControlLength;)
        {
            var length = (int)*(nuint*)(control + offset);
            if (length < CmsgHeader)
            {
                break;
            }

            if (*(int*)(control + offset + 8) == SolUdp && *(int*)(control + offset + 12) == UdpGro)
            {
                segmentSize = *(int*)(control + offset + CmsgHeader);
            }

            offset += (length + 7) & ~7;
        }

        return (message.Flags & Truncated) != 0 ? 0 : (int)received;
    }
}
