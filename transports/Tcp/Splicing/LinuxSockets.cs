using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>The few libc calls the splicer needs, with Linux's constants (the same on x64 and arm64).</summary>
internal static unsafe partial class LinuxSockets
{
    public const int EpollCloexec = 0x80000;
    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const int EpollCtlMod = 3;
    public const uint EpollIn = 0x001;
    public const uint EpollOut = 0x004;
    public const uint EpollErr = 0x008;
    public const uint EpollHup = 0x010;
    public const uint EpollRdHup = 0x2000;
    public const uint EpollEt = 1u << 31;
    public const int MsgDontWait = 0x40;
    public const int MsgNoSignal = 0x4000;
    public const int ShutWr = 1;
    public const int ShutRdWr = 2;
    public const int EfdCloexec = 0x80000;
    public const int EfdNonBlock = 0x800;
    public const int FGetFl = 3;
    public const int FSetFl = 4;
    public const int FDupFdCloexec = 1030;
    public const int SolSocket = 1;
    public const int SoLinger = 13;
    public const int ONonBlock = 0x800;
    public const int EIntr = 4;
    public const int EAgain = 11;

    /// <summary>
    /// struct epoll_event is packed on x86-64 (12 bytes: events, then data at offset 4) and
    /// naturally aligned elsewhere (16 bytes, data at offset 8).
    /// </summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    public static readonly int EventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>
    /// Makes a socket's reads and writes non-blocking for the splicer. <c>Socket.Blocking = false</c>
    /// would too, but on Linux it also creates the socket's .NET async context (about 220 bytes with
    /// its locks, for as long as the socket lives), which a socket only the splicer reads never uses:
    /// so the descriptor's own flag is set instead.
    /// </summary>
    public static bool MakeNonBlocking(int fd)
    {
        var flags = Fcntl(fd, FGetFl, 0);
        return flags >= 0 && ((flags & ONonBlock) != 0 || Fcntl(fd, FSetFl, flags | ONonBlock) == 0);
    }

    /// <summary>A second descriptor for the same socket (close-on-exec), or -1 with <see cref="Errno"/>.</summary>
    public static int Duplicate(nint fd) => Fcntl((int)fd, FDupFdCloexec, 0);

    /// <summary>A zero linger: closing the descriptor then sends RST instead of FIN.</summary>
    public static void SetZeroLinger(int fd)
    {
        var linger = stackalloc int[2];
        linger[0] = 1;
        linger[1] = 0;
        _ = SetSockOpt(fd, SolSocket, SoLinger, linger, 2 * sizeof(int));
    }

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(int fd, int level, int name, void* value, int length);

    public static int EpollAdd(int epoll, int fd, uint events, ulong data) => EpollControl(epoll, EpollCtlAdd, fd, events, data);

    public static int EpollModify(int epoll, int fd, uint events, ulong data) => EpollControl(epoll, EpollCtlMod, fd, events, data);

    public static int EpollDelete(int epoll, int fd) => EpollControl(epoll, EpollCtlDel, fd, 0, 0);

    private static int EpollControl(int epoll, int operation, int fd, uint events, ulong data)
    {
        var buffer = stackalloc byte[16];
        *(uint*)buffer = events;
        *(ulong*)(buffer + EventDataOffset) = data;
        return EpollCtl(epoll, operation, fd, buffer);
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epoll, int operation, int fd, byte* @event);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epoll, byte* events, int maxEvents, int timeout);

    /// <summary>recv(2) that never blocks; on failure <see cref="Errno"/> tells why.</summary>
    public static nint Receive(int fd, byte* buffer, nint length, int flags)
    {
        var received = ReceiveNow(fd, buffer, length, flags | MsgDontWait);
        if (received < 0)
        {
            Marshal.SetLastPInvokeError(Marshal.GetLastSystemError());
        }

        return received;
    }

    /// <summary>send(2) that never blocks; on failure <see cref="Errno"/> tells why.</summary>
    public static nint Send(int fd, byte* buffer, nint length, int flags)
    {
        var sent = SendNow(fd, buffer, length, flags | MsgDontWait);
        if (sent < 0)
        {
            Marshal.SetLastPInvokeError(Marshal.GetLastSystemError());
        }

        return sent;
    }

    // The hot pair, called for every chunk. With MSG_DONTWAIT they return at once, so they run
    // without a GC transition (a third of their managed overhead), and nothing the runtime does
    // between the call and the errno read can clobber it; errno is read only on failure.
    [LibraryImport("libc", EntryPoint = "recv")]
    [SuppressGCTransition]
    private static partial nint ReceiveNow(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "send")]
    [SuppressGCTransition]
    private static partial nint SendNow(int fd, byte* buffer, nint length, int flags);

    public const int EInProgress = 115;

    /// <summary>connect(2) on a non-blocking socket: 0, or -1 with <see cref="Errno"/> (EINPROGRESS while under way).</summary>
    public static int Connect(int fd, System.Net.SocketAddress address)
    {
        fixed (byte* buffer = address.Buffer.Span)
        {
            return ConnectNative(fd, buffer, address.Size);
        }
    }

    /// <summary>
    /// What .NET's socket calls would report for a connect(2) that failed at once (Linux's errno
    /// numbers); the rest are <see cref="SocketError.SocketError"/>.
    /// </summary>
    public static SocketError ConnectError(int errno) => errno switch
    {
        1 or 13 => SocketError.AccessDenied,
        11 or 99 => SocketError.AddressNotAvailable,
        12 or 105 => SocketError.NoBufferSpaceAvailable,
        98 => SocketError.AddressAlreadyInUse,
        100 or 101 => SocketError.NetworkUnreachable,
        23 or 24 => SocketError.TooManyOpenSockets,
        110 => SocketError.TimedOut,
        111 => SocketError.ConnectionRefused,
        112 or 113 => SocketError.HostUnreachable,
        _ => SocketError.SocketError,
    };

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static partial int ConnectNative(int fd, byte* address, int length);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
