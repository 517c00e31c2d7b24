using Forwarder.Transports.Diagnostics;
using static Forwarder.Transports.Tcp.Splicing.LinuxSockets;

namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// One direction of a spliced pair. Its thread runs it in two phases per loop, as HAProxy does:
/// first every ready flow reads once into a pooled block, then every flow sends what it read, so
/// the peers it wakes are woken once per batch rather than in the middle of it. A flow does not
/// read again until its block is sent: that is the backpressure.
/// </summary>
internal sealed unsafe class SpliceFlow(SplicedPair pair, int source, int target, bool toUpstream)
{
    private byte[]? _block;
    private int _offset;
    private int _count;
    private bool _finReceived;

    public SplicedPair Pair => pair;

    /// <summary>Edge-triggered epoll said the source has data (or a FIN or an error) not read yet.</summary>
    public bool SourceReadable { get; set; }

    /// <summary>The source hung up: read to the end even after a short read.</summary>
    public bool SourceHungUp { get; set; }

    public bool TargetWritable { get; set; } = true;

    /// <summary>In its thread's list of flows to run this loop.</summary>
    public bool Queued { get; set; }

    /// <summary>The source's FIN was passed on and nothing is left to send.</summary>
    public bool Finished { get; private set; }

    /// <summary>Bytes wait for the target to take them: its writability is worth watching.</summary>
    public bool Blocked => _count > 0 && !TargetWritable;

    /// <summary>Holds no bytes and is not queued to run: its pair may move to another thread.</summary>
    public bool Idle => _count == 0 && !Queued && !HasWork;

    public bool HasWork => !Finished && (_count > 0 ? TargetWritable : SourceReadable || _finReceived);

    /// <summary>Reads once if nothing is waiting to be sent; false when the source failed.</summary>
    public bool ReadOnce(BlockStack blocks)
    {
        if (Finished || _count > 0 || _finReceived || !SourceReadable)
        {
            return true;
        }

        var block = blocks.Rent();
        nint read;
        fixed (byte* buffer = block)
        {
            do
            {
                read = Receive(source, buffer, block.Length, 0);
            }
            while (read < 0 && Errno == EIntr);
        }

        if (read > 0)
        {
            _block = block;
            _offset = 0;
            _count = (int)read;
            pair.Observer.Forwarded(toUpstream, (int)read);

            // With edge-triggered epoll a short read means the socket is drained: new data raises
            // a new edge. A hang-up raises none, so then the flow reads on to the end.
            SourceReadable = read == block.Length || SourceHungUp;
            return true;
        }

        blocks.Return(block);
        SourceReadable = false;
        if (read == 0)
        {
            _finReceived = true;
            return true;
        }

        return Errno == EAgain;
    }

    /// <summary>Sends what was read, then passes on a FIN once all before it is out; false when the target failed.</summary>
    public bool Flush(BlockStack blocks)
    {
        if (Finished)
        {
            return true;
        }

        if (_count > 0)
        {
            if (!TargetWritable)
            {
                return true;
            }

            InjectedDelay.Apply();
            int sent;
            fixed (byte* buffer = _block)
            {
                sent = SendSome(buffer + _offset, _count);
            }

            if (sent < 0)
            {
                return false;
            }

            _offset += sent;
            _count -= sent;
            if (_count > 0)
            {
                TargetWritable = false;
                return true;
            }

            blocks.Return(_block!);
            _block = null;
        }

        if (_finReceived)
        {
            Shutdown(target, ShutWr);
            Finished = true;
        }

        return true;
    }

    public void Release(BlockStack blocks)
    {
        if (_block is not null)
        {
            blocks.Return(_block);
            _block = null;
            _count = 0;
        }
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
}
