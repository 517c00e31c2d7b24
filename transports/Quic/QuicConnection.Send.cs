using System.Net.Sockets;
using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// Sending: what ngtcp2 has to write goes out datagram by datagram, and the expiry timer follows it.
internal sealed unsafe partial class QuicConnection
{
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

                if (!SendPacket((int)written) || accepted < 0)
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

            if (!SendPacket((int)written))
            {
                break;
            }
        }

        ArmTimerLocked();
    }

    private nint WritePacket(long streamId, Vec* data, nuint count, uint flags, ulong now, out nint accepted)
    {
        PacketInfo info = default;
        nint datalen = -1;
        nint written;
        fixed (byte* dest = _sendBuffer)
        {
            // One datagram at a time for now: GSO batching is the next step.
            written = WritevStream(_conn, ScratchPath, PacketInfoVersion, &info, dest, 1452, &datalen, flags, streamId, data, count, now);
        }

        accepted = datalen;
        return written;
    }

    private bool SendPacket(int length)
    {
        try
        {
            if (_peer is null)
            {
                _socket.Send(_sendBuffer.AsSpan(0, length), SocketFlags.None);
            }
            else
            {
                _socket.SendTo(_sendBuffer.AsSpan(0, length), SocketFlags.None, _peer);
            }

            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.NoBufferSpaceAvailable or SocketError.ConnectionRefused)
        {
            return false; // dropped like any lost datagram: ngtcp2's loss recovery resends it
        }
        catch (ObjectDisposedException)
        {
            return false; // the listener's socket closed under a server connection
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
