using System.Runtime.InteropServices;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// A few descriptors held back from connections for the runtime itself. Out of descriptors, it
/// is not only accept() and socket() that fail: the .NET runtime opens files at unforeseeable
/// moments (/proc/self/status as it starts a thread, an assembly loaded on first use), and such
/// a failure aborts the process ("Out of memory.", SIGABRT). So the reserve sits at the top of
/// the descriptor range (the last <see cref="Size"/> numbers under RLIMIT_NOFILE). The kernel
/// always hands out the lowest free number, so a socket numbered just below the reserve proves
/// every other descriptor is taken: that socket, or an accept() or socket() failing with EMFILE,
/// gives the reserve to the runtime, and listeners take no connection until it can be held again,
/// that is, until connections have closed. Meanwhile the flood waits in the listen backlog.
/// Above 65536 descriptors the reserve is not moved to the top (the kernel would size the
/// descriptor table for the whole range), and only EMFILE releases it.
/// </summary>
internal static unsafe partial class FileDescriptorReserve
{
    /// <summary>Enough for the runtime's own short-lived needs while connections hold all the rest.</summary>
    internal const int Size = 32;

    private const int RlimitNoFile = 7;
    private const int FDupFdCloexec = 1030;
    private const ulong LargestPlacedLimit = 1 << 16;

    private static readonly Lock Gate = new();
    private static readonly int[] Held = new int[Size];
    private static int s_count;
    private static volatile bool s_held;

    /// <summary>The lowest number the reserve holds at the top; long.MaxValue when it is not placed there.</summary>
    private static long s_floor = long.MaxValue;
    private static int s_limit;
    private static int s_next;

    /// <summary>Whether connections may take descriptors now: the reserve is held, or could be taken again.</summary>
    public static bool TryHold()
    {
        if (s_held)
        {
            return true;
        }

        lock (Gate)
        {
            if (s_count == 0)
            {
                ulong* limits = stackalloc ulong[2];
                s_limit = GetRLimit(RlimitNoFile, limits) == 0 && limits[0] <= LargestPlacedLimit ? (int)limits[0] : -1;
                s_floor = s_limit > 0 ? s_limit : long.MaxValue;
                s_next = s_limit - 1;
            }

            while (s_count < Size)
            {
                var fd = EventFd(0, EfdCloexec);
                if (fd < 0)
                {
                    // Still short: what was taken stays held, the rest is tried again on the next call.
                    return false;
                }

                if (s_floor != long.MaxValue)
                {
                    fd = MoveToTop(fd);
                }

                Held[s_count++] = fd;
            }

            s_held = true;
            return true;
        }
    }

    /// <summary>
    /// Moves a reserve descriptor to the highest free number, searching down from the limit past
    /// numbers taken meanwhile (an assembly loaded while the reserve was out keeps its number).
    /// Where the top is too crowded, the reserve stays wherever it is and only EMFILE releases it.
    /// </summary>
    private static int MoveToTop(int fd)
    {
        while (s_next >= s_limit - (4 * Size))
        {
            // F_DUPFD takes the lowest free number at or above the one asked for.
            var top = Fcntl(fd, FDupFdCloexec, s_next--);
            if (top >= 0)
            {
                Close(fd);
                s_floor = Math.Min(s_floor, top);
                return top;
            }
        }

        s_floor = long.MaxValue;
        return fd;
    }

    /// <summary>Called with each new socket: when it took the last descriptor below the reserve, the reserve is released.</summary>
    public static void Check(System.Net.Sockets.Socket socket)
    {
        if (socket.SafeHandle.DangerousGetHandle() >= s_floor - 1)
        {
            Release();
        }
    }

    /// <summary>accept() or socket() found no descriptor, or took the last one: the reserve goes to the runtime.</summary>
    public static void Release()
    {
        lock (Gate)
        {
            s_held = false;
            while (s_count > 0)
            {
                Close(Held[--s_count]);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, ulong* limits);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
