using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// Receiving: datagrams (a server connection's from its listener, a client's from its own socket)
// go to ngtcp2 under the gate, then one flush answers the whole run; a datagram ngtcp2 rejects
// ends the connection with the reason told to the peer.
internal sealed unsafe partial class QuicConnection
{
    private const int MaxReceivesPerDrain = 64;

    /// <summary>Reads one datagram, or a GRO run of them <paramref name="segmentSize"/> bytes each, then flushes once.</summary>
    /// <returns>False once the connection has failed or closed.</returns>
    internal bool OnDatagrams(ReadOnlySpan<byte> datagrams, int segmentSize)
    {
        lock (_gate)
        {
            if (!ReadLocked(datagrams, segmentSize))
            {
                return false;
            }

            FlushLocked();
            return true;
        }
    }

    private bool ReadLocked(ReadOnlySpan<byte> datagrams, int segmentSize)
    {
        if (_failure is not null)
        {
            return false;
        }

        var now = Now();
        fixed (byte* packets = datagrams)
        {
            for (var offset = 0; offset < datagrams.Length; offset += segmentSize)
            {
                PacketInfo info = default;
                var rv = ReadPacket(_conn, SocketPath, PacketInfoVersion, &info, packets + offset,
                    (nuint)Math.Min(segmentSize, datagrams.Length - offset), now);
                if (rv != 0)
                {
                    FailLocked(OnReadErrorLocked(rv));
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// A client's receive step: reads what its socket holds (a bounded number of calls, so timers and
    /// writers get the lock between), then flushes once: one ack and one lock trip per run, not per datagram.
    /// </summary>
    /// <returns>False once the connection has failed or closed.</returns>
    private bool DrainSocket()
    {
        var fd = _socket.SafeHandle.DangerousGetHandle(); // the socket outlives the receive loop
        lock (_gate)
        {
            fixed (byte* buffer = _receiveBuffer)
            {
                for (var i = 0; i < MaxReceivesPerDrain; i++)
                {
                    var received = UdpNative.Receive(fd, buffer, PacketBufferSize, null, null, out var segmentSize);
                    if (received == -UdpNative.WouldBlock)
                    {
                        break;
                    }

                    if (received == -UdpNative.ConnectionRefused)
                    {
                        continue; // ICMP port unreachable from an earlier datagram: ngtcp2's loss recovery and timers decide
                    }

                    if (received < 0)
                    {
                        FailLocked(new QuicException($"UDP receive failed: errno {-received}"));
                        return false;
                    }

                    if (!ReadLocked(new ReadOnlySpan<byte>(buffer, received), segmentSize))
                    {
                        return false;
                    }
                }
            }

            FlushLocked();
            return _failure is null;
        }
    }

    /// <summary>Called under the lock when ngtcp2 rejects a datagram: tells the peer why (unless it closed first).</summary>
    private QuicException OnReadErrorLocked(int rv)
    {
        if (rv == ErrDraining && _statelessReset)
        {
            return new QuicException("QUIC connection reset by the peer (stateless reset: it no longer has this connection)");
        }

        if (rv == ErrDraining)
        {
            var peerError = stackalloc byte[ConnectionCloseErrorSize];
            GetConnectionCloseError(_conn, peerError);
            return new QuicException($"QUIC connection closed by the peer (error 0x{*(ulong*)(peerError + 8):x})");
        }

        if (rv != ErrDropConn)
        {
            var closeError = stackalloc byte[ConnectionCloseErrorSize];
            if (rv == ErrCrypto)
            {
                SetTransportErrorTlsAlert(closeError, GetTlsAlert(_conn), null, 0);
            }
            else
            {
                SetTransportErrorLibError(closeError, rv, null, 0);
            }

            SendConnectionCloseLocked(closeError);
        }

        if (rv == ErrCrypto)
        {
            var status = GnuTlsNative.SessionGetVerifyCertStatus(_tls);
            if (_peerRefusal is not null)
            {
                return new QuicException($"QUIC handshake failed: peer refused: {_peerRefusal}");
            }

            return new QuicException(status != 0 && _options is QuicClientOptions client
                ? $"QUIC handshake failed: the server's certificate did not verify for {client.ServerName} against {client.CaFile} (GnuTLS status 0x{status:x})"
                : $"QUIC handshake failed: {ErrorText(rv)} (TLS alert {GetTlsAlert(_conn)})");
        }

        return new QuicException($"QUIC read failed: {ErrorText(rv)}");
    }
}
