using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// Sending: what ngtcp2 has to write is packed into the send buffer back to back and leaves in one
// sendmsg per run of equal-sized datagrams (UDP GSO); the expiry timer follows it.
internal sealed unsafe partial class QuicConnection
{
    private const int MaxPacket = 1452;
    private int _batchLength;
    private int _batchCount;
    private int _segmentSize;
    private bool _gsoFailed;

    /// <summary>Writes stream data stream by stream, then acks and control frames, until ngtcp2 has nothing to send.</summary>
    private void FlushLocked()
    {
        if (_failure is not null)
        {
            return;
        }

        var now = Now();
        foreach (var stream in _streams.Values)
        {
            // An aborted stream stays listed until ngtcp2 closes it, but its send buffer is gone.
            while (!stream.IsClosed && stream.Send.HasPending)
            {
                var vec = stream.Send.NextUnsent();
                var fin = stream.Send.FinRequested && stream.Send.Sent + (long)vec.Length == stream.Send.Written;
                var written = WritePacket(stream.Id, &vec, vec.Length == 0 ? 0u : 1u, fin ? WriteStreamFlagFin : 0, now, out var accepted);
                if (accepted >= 0)
                {
                    stream.Send.OnSent(accepted, fin && accepted == (long)vec.Length);
                }

                if (written == ErrStreamDataBlocked || written == ErrStreamShutWr || written == ErrStreamNotFound || written == 0)
                {
                    break;
                }

                if (written < 0)
                {
                    FailLocked(new QuicException($"ngtcp2_conn_writev_stream: {ErrorText((int)written)}"));
                    return;
                }

                if (!QueuePacket((int)written) || accepted < 0)
                {
                    break; // congestion- or connection-window limited: the next ack or MAX_DATA resumes it
                }
            }
        }

        while (true)
        {
            var written = WritePacket(-1, null, 0, 0, now, out _);
            if (written <= 0)
            {
                if (written < 0)
                {
                    FailLocked(new QuicException($"ngtcp2_conn_write_pkt: {ErrorText((int)written)}"));
                }

                break;
            }

            if (!QueuePacket((int)written))
            {
                break;
            }
        }

        SendBatch();
        ArmTimerLocked();
    }

    private nint WritePacket(long streamId, Vec* data, nuint count, uint flags, ulong now, out nint accepted)
    {
        PacketInfo info = default;
        nint datalen = -1;
        nint written;
        fixed (byte* buffer = _sendBuffer)
        {
            written = WritevStream(_conn, ScratchPath, PacketInfoVersion, &info, buffer + _batchLength, MaxPacket, &datalen, flags, streamId, data, count, now);
        }

        accepted = datalen;
        return written;
    }

    /// <summary>
    /// Adds the packet ngtcp2 just wrote to the batch. A run goes out when it is full, when a packet is
    /// shorter than the run's first (GSO cuts every segment but the last to that size), or without GSO.
    /// </summary>
    /// <returns>False when a send failed: the caller stops writing, and ngtcp2's loss recovery resends.</returns>
    private bool QueuePacket(int length)
    {
        if (_batchCount > 0 && length > _segmentSize)
        {
            // Longer than the run: send the run without it, then start a new run with it.
            var sent = SendDatagrams(_batchLength, _batchCount == 1 ? _batchLength : _segmentSize);
            _sendBuffer.AsSpan(_batchLength, length).CopyTo(_sendBuffer);
            _batchLength = 0;
            _batchCount = 0;
            if (!sent)
            {
                return false;
            }
        }

        if (_batchCount == 0)
        {
            _segmentSize = length;
        }

        _batchLength += length;
        _batchCount++;
        return length < _segmentSize || _batchCount == UdpNative.MaxSegments || _gsoFailed ? SendBatch() : true;
    }

    private bool SendBatch()
    {
        if (_batchCount == 0)
        {
            return true;
        }

        var sent = SendDatagrams(_batchLength, _batchCount == 1 ? _batchLength : _segmentSize);
        _batchLength = 0;
        _batchCount = 0;
        return sent;
    }

    private bool SendDatagrams(int length, int segmentSize)
    {
        var added = false;
        try
        {
            _socket.SafeHandle.DangerousAddRef(ref added);
            var fd = _socket.SafeHandle.DangerousGetHandle();
            // A client's socket is connected; a server connection addresses its peer on the shared socket.
            var peer = _peer is null ? null : SocketPath->Remote.SockAddr;
            var peerLength = _peer is null ? 0 : SocketPath->Remote.AddrLength;
            fixed (byte* data = _sendBuffer)
            {
                var errno = UdpNative.Send(fd, data, length, segmentSize, peer, peerLength);
                if (errno is UdpNative.IoError or UdpNative.Invalid && segmentSize < length)
                {
                    // No GSO on this path (a device without checksum offload, an old kernel): one datagram per call from now on.
                    _gsoFailed = true;
                    errno = 0;
                    for (var offset = 0; offset < length && errno == 0; offset += segmentSize)
                    {
                        var size = Math.Min(segmentSize, length - offset);
                        errno = UdpNative.Send(fd, data + offset, size, size, peer, peerLength);
                    }
                }

                // EAGAIN, ENOBUFS, ECONNREFUSED: dropped like any lost datagram; loss recovery resends it.
                return errno == 0;
            }
        }
        catch (ObjectDisposedException)
        {
            return false; // the listener's socket closed under a server connection
        }
        finally
        {
            if (added)
            {
                _socket.SafeHandle.DangerousRelease();
            }
        }
    }

    private void ArmTimerLocked()
    {
        var expiry = GetExpiry(_conn);
        if (expiry == ulong.MaxValue)
        {
            _timer.Change(Timeout.Infinite, Timeout.Infinite);
            return;
        }

        var now = Now();
        var dueMs = expiry <= now ? 0 : (long)Math.Ceiling((expiry - now) / 1_000_000.0);
        _timer.Change(dueMs, Timeout.Infinite);
    }
}
