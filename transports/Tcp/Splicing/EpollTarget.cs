using System.Runtime.InteropServices;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Something a splicer thread watches in its epoll set: a spliced pair, or a connect in progress.
/// Everything but <see cref="Cancel"/> runs on that thread.
/// </summary>
internal abstract class EpollTarget
{
    /// <summary>The thread that owns it, set when the thread takes it in.</summary>
    public SplicerThread Thread { get; set; } = null!;

    /// <summary>Keeps it reachable from the epoll data word while registered.</summary>
    public GCHandle Handle { get; set; }

    /// <summary>Adds its descriptors to the thread's epoll set; false when that failed and it was ended.</summary>
    public abstract bool Watch(ulong data);

    /// <summary>Handles one event; <paramref name="secondSide"/> is the data word's low bit.</summary>
    public abstract void OnEvent(bool secondSide, uint events, List<SpliceFlow> ready);

    /// <summary>Ends it without waiting for its descriptors (the thread is stopping or the caller gave up).</summary>
    public abstract void Cancel(Exception reason);

    /// <summary>Runs on the thread after <see cref="SplicerThread.Schedule"/> asked for it from any thread.</summary>
    public virtual void OnScheduled()
    {
    }
}
