using System.ComponentModel;
using System.Runtime.InteropServices;

namespace Forwarder.Runtime;

/// <summary>
/// Calls back when anything happens in one directory (inotify), without saying what: the config
/// watcher looks at its file on any event. It replaces FileSystemWatcher, whose reader thread
/// blocks in read() on a managed 16 KiB buffer, pinned all the while: the start-up collection
/// cannot move it, so its gen0 region stays (1.5 MiB resident in an idle process). Here the read
/// buffer and the poll set are native memory, and one thread waits on the inotify descriptor and
/// on an eventfd that wakes it to stop.
/// </summary>
internal sealed class DirectoryWatch : IDisposable
{
    private const int BufferSize = 16 * 1024;
    private const int CloseOnExec = 0x80000;
    private const short PollIn = 0x1;
    private const int Interrupted = 4;

    // IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR:
    // writes, renames (a ConfigMap's ..data swap), new and removed files, the directory itself going.
    private const uint Events = 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x01000000;

    private readonly int _inotify;
    private readonly int _wake;
    private readonly Action _changed;
    private readonly Action<Exception>? _failed;
    private readonly Thread _thread;
    private int _disposed;
    private bool _closeOnExit;

    private DirectoryWatch(int inotify, int wake, Action changed, Action<Exception>? failed)
    {
        _inotify = inotify;
        _wake = wake;
        _changed = changed;
        _failed = failed;
        _thread = new Thread(Run) { IsBackground = true, Name = "config watch" };
        _thread.Start();
    }

    /// <summary>
    /// Watches <paramref name="directory"/>; <paramref name="changed"/> runs on the watch's thread after each batch of
    /// events, and <paramref name="failed"/> gets what it throws.
    /// </summary>
    /// <exception cref="IOException">inotify or the directory refused.</exception>
    public static DirectoryWatch Start(string directory, Action changed, Action<Exception>? failed = null)
    {
        var inotify = InotifyInit(CloseOnExec);
        if (inotify < 0)
        {
            throw Failure($"inotify_init1 for {directory}");
        }

        var path = Marshal.StringToCoTaskMemUTF8(directory);
        try
        {
            if (InotifyAddWatch(inotify, path, Events) < 0)
            {
                var error = Failure($"inotify_add_watch on {directory}");
                Close(inotify);
                throw error;
            }
        }
        finally
        {
            Marshal.FreeCoTaskMem(path);
        }

        var wake = EventFd(0, CloseOnExec);
        if (wake < 0)
        {
            var error = Failure("eventfd");
            Close(inotify);
            throw error;
        }

        return new DirectoryWatch(inotify, wake, changed, failed);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // The fds are closed here, never by the thread: a thread that stopped early (poll failed)
        // leaves the eventfd open, so this write cannot land on a reused descriptor number.
        ulong one = 1;
        _ = Write(_wake, ref one, sizeof(ulong));
        if (Thread.CurrentThread == _thread)
        {
            // Disposed from the callback: the loop sees _disposed and closes them as it leaves.
            _closeOnExit = true;
            return;
        }

        _thread.Join();
        Close(_inotify);
        Close(_wake);
    }

    private void Run()
    {
        var buffer = Marshal.AllocHGlobal(BufferSize);
        var polls = Marshal.AllocHGlobal(16);
        try
        {
            // struct pollfd { int fd; short events; short revents; } for the inotify descriptor, then the eventfd.
            Marshal.WriteInt32(polls, 0, _inotify);
            Marshal.WriteInt16(polls, 4, PollIn);
            Marshal.WriteInt32(polls, 8, _wake);
            Marshal.WriteInt16(polls, 12, PollIn);
            while (Volatile.Read(ref _disposed) == 0)
            {
                Marshal.WriteInt16(polls, 6, 0);
                Marshal.WriteInt16(polls, 14, 0);
                if (Poll(polls, 2, -1) < 0)
                {
                    if (Marshal.GetLastPInvokeError() == Interrupted)
                    {
                        continue;
                    }

                    // Cannot wait any more: have the file looked at once, as for lost events.
                    Notify();
                    break;
                }

                if (Marshal.ReadInt16(polls, 6) != 0 && Volatile.Read(ref _disposed) == 0)
                {
                    // The events themselves do not matter (an overflow counts too): any means "look".
                    _ = Read(_inotify, buffer, BufferSize);
                    Notify();
                }
            }
        }
        finally
        {
            Marshal.FreeHGlobal(polls);
            Marshal.FreeHGlobal(buffer);
            if (_closeOnExit)
            {
                Close(_inotify);
                Close(_wake);
            }
        }
    }

    /// <summary>An exception on this thread would end the process: the watch reports it and goes on.</summary>
    private void Notify()
    {
        try
        {
            _changed();
        }
        catch (Exception ex)
        {
            _failed?.Invoke(ex);
        }
    }

    private static IOException Failure(string what)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what} failed: {new Win32Exception(errno).Message}", errno);
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow; the signatures are blittable.
    [DllImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static extern int InotifyInit(int flags);

    [DllImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true)]
    private static extern int InotifyAddWatch(int fd, nint path, uint mask);

    [DllImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static extern int EventFd(uint initial, int flags);

    [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static extern int Poll(nint fds, nuint count, int timeout);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, nint buffer, nint count);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, ref ulong value, nint count);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);
#pragma warning restore SYSLIB1054
}
