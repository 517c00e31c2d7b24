using System.Buffers;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// One direction of a spliced pair: reads the source socket into the thread's scratch buffer and
/// sends it straight on. Only bytes the target cannot take yet are kept, in a pooled buffer, and
/// the source is not read again until they are gone: that is the backpressure.
/// </summary>
internal sealed unsafe class SpliceFlow(int source, int target, bool toUpstream)
{
    private byte[]? _pending;
    private int _pendingOffset;
    private int _pendingCount;
    private bool _finReceived;

    /// <summary>Edge-triggered epoll said the source has data (or a FIN or an error) not read yet.</summary>
    public bool SourceReadable { get; set; }

    /// <summary>The source hung up: read to the end even after a short read.</summary>
    public bool SourceHungUp { get; set; }

    public bool TargetWritable { get; set; } = true;

    /// <summary>Bytes wait for the target to take them: its writability is worth watching.</summary>
    public bool Blocked => _pendingCount > 0;

    /// <summary>The source's FIN was passed on and nothing is left to send.</summary>
    public bool Finished { get; private set; }

    /// <summary>Moves what it can; false when a socket failed and the pair must be reset.</summary>
    public bool Pump(byte[] scratch, ISpliceObserver observer)
    {
        if (Finished)
        {
            return true;
        }

        var flush = FlushPending();
        if (flush != SendResult.Done)
        {
            return flush != SendResult.Failed;
        }

        fixed (byte* buffer = scratch)
        {
            while (SourceReadable && !_finReceived)
            {
                var read = Receive(source, buffer, scratch.Length, 0);
                if (read > 0)
                {
                    observer.Forwarded(toUpstream, (int)read);
                    var sent = SendOrKeep(buffer, (int)read);
                    if (sent == SendResult.Failed)
                    {
                        return false;
                    }

                    // With edge-triggered epoll a short read means the socket is drained: new data
                    // raises a new edge. A hang-up raises none, so then read on to the end.
                    if (read < scratch.Length && !SourceHungUp)
                    {
                        SourceReadable = false;
                    }

                    if (sent == SendResult.Blocked)
                    {
                        return true;
                    }
                }
                else if (read == 0)
                {
                    SourceReadable = false;
                    _finReceived = true;
                }
                else if (Errno is var errno && errno == EAgain)
                {
                    SourceReadable = false;
                }
                else if (errno != EIntr)
                {
                    return false;
                }
            }
        }

        if (_finReceived)
        {
            PassOnFin();
        }

        return true;
    }

    public void ReleaseBuffer()
    {
        if (_pending is not null)
        {
            ArrayPool<byte>.Shared.Return(_pending);
            _pending = null;
            _pendingCount = 0;
        }
    }

    private void PassOnFin()
    {
        Shutdown(target, ShutWr);
        Finished = true;
    }

    private SendResult FlushPending()
    {
        if (_pendingCount == 0)
        {
            return SendResult.Done;
        }

        if (!TargetWritable)
        {
            return SendResult.Blocked;
        }

        int sent;
        fixed (byte* buffer = _pending)
        {
            sent = SendSome(buffer + _pendingOffset, _pendingCount);
        }

        if (sent < 0)
        {
            return SendResult.Failed;
        }

        _pendingOffset += sent;
        _pendingCount -= sent;
        if (_pendingCount > 0)
        {
            TargetWritable = false;
            return SendResult.Blocked;
        }

        ReleaseBuffer();
        return SendResult.Done;
    }

    private SendResult SendOrKeep(byte* buffer, int count)
    {
        var sent = SendSome(buffer, count);
        if (sent < 0)
        {
            return SendResult.Failed;
        }

        if (sent == count)
        {
            return SendResult.Done;
        }

        _pending = ArrayPool<byte>.Shared.Rent(count - sent);
        new ReadOnlySpan<byte>(buffer + sent, count - sent).CopyTo(_pending);
        _pendingOffset = 0;
        _pendingCount = count - sent;
        TargetWritable = false;
        return SendResult.Blocked;
    }

    /// <summary>Bytes sent (fewer than asked when the target's buffer is full), or -1 when the target failed.</summary>
    private int SendSome(byte* buffer, int count)
    {
        var total = 0;
        while (total < count)
        {
            var sent = Send(target, buffer + total, count - total, MsgNoSignal);
            if (sent >= 0)
            {
                total += (int)sent;
            }
            else if (Errno is var errno && errno == EAgain)
            {
                break;
            }
            else if (errno != EIntr)
            {
                return -1;
            }
        }

        return total;
    }

    private enum SendResult
    {
        Done,
        Blocked,
        Failed,
    }
}
