using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using static Forwarder.Transports.Quic.Ngtcp2Native;

namespace Forwarder.Transports.Quic;

// ngtcp2's callbacks. They run inside ngtcp2 calls the connection makes under its lock, so they touch
// state directly; none may throw into native code.
internal sealed unsafe partial class QuicConnection
{
    [UnmanagedCallersOnly]
    private static nint GetConnection(CryptoConnRef* connRef) => From(connRef->UserData)._conn;

    /// <summary>GnuTLS's verify hook: hands the peer's leaf to <see cref="QuicConnectionOptions.ValidatePeerCertificate"/>.</summary>
    [UnmanagedCallersOnly]
    private static int VerifyPeer(nint session)
    {
        const int refuse = -1;
        var connRef = (CryptoConnRef*)GnuTlsNative.SessionGetPtr(session);
        var self = From(connRef->UserData);
        try
        {
            uint count;
            var peers = GnuTlsNative.CertificateGetPeers(session, &count);
            if (peers is null || count == 0)
            {
                self._peerRefusal = "the peer presented no certificate";
                return refuse;
            }

            var leaf = X509CertificateLoader.LoadCertificate(new ReadOnlySpan<byte>(peers[0].Data, (int)peers[0].Size));
            self._peerRefusal = self._options.ValidatePeerCertificate!(leaf);
            if (self._peerRefusal is not null)
            {
                leaf.Dispose();
                return refuse;
            }

            self.RemoteCertificate = leaf;
            return 0;
        }
        catch (Exception e)
        {
            self._peerRefusal = $"peer certificate check failed: {e.Message}";
            return refuse;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnHandshakeCompleted(nint conn, void* userData)
    {
        try
        {
            From(userData)._handshake.TrySetResult();
            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnReceiveStreamData(nint conn, uint flags, long streamId, ulong offset, byte* data, nuint length,
        void* userData, void* streamUserData)
    {
        try
        {
            var self = From(userData);
            if (self._streams.TryGetValue(streamId, out var stream))
            {
                stream.OnReceived(new ReadOnlySpan<byte>(data, (int)length), (flags & StreamDataFlagFin) != 0);
            }
            else
            {
                // A peer-opened stream nobody accepts yet (e.g. HTTP/3 control streams): discard, keep the window open.
                _ = ExtendMaxStreamOffset(conn, streamId, length);
                ExtendMaxOffset(conn, length);
            }

            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnAckedStreamData(nint conn, long streamId, ulong offset, ulong length, void* userData, void* streamUserData)
    {
        try
        {
            var self = From(userData);
            if (self._streams.TryGetValue(streamId, out var stream))
            {
                stream.Send.OnAcked((long)offset, (long)length);
                stream.ReleaseSpaceWaiter();
            }

            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    /// <summary>A peer-opened stream: bidirectional ones are handed to AcceptStreamAsync, unidirectional ones discarded.</summary>
    [UnmanagedCallersOnly]
    private static int OnStreamOpen(nint conn, long streamId, void* userData)
    {
        try
        {
            const long unidirectional = 0x2;
            if ((streamId & unidirectional) == 0)
            {
                var self = From(userData);
                var stream = new QuicStream(self, streamId, self._chunks);
                self._streams.Add(streamId, stream);
                self._acceptedStreams.Writer.TryWrite(stream);
            }

            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnStreamClose(nint conn, uint flags, long streamId, ulong appErrorCode, void* userData, void* streamUserData)
    {
        try
        {
            var self = From(userData);
            if (self._streams.Remove(streamId, out var stream))
            {
                stream.OnClosed(null);
                self.OnStreamRemovedLocked();
            }

            // A stream the peer opened is done: let it open another. ngtcp2 does not raise the limit by
            // itself, so without this a connection would take Max*Streams from the peer in its lifetime.
            var serverOpened = (streamId & 1) != 0;
            if (serverOpened != (self._listener is not null))
            {
                if ((streamId & 2) == 0)
                {
                    Ngtcp2Native.ExtendMaxStreamsBidi(conn, 1);
                }
                else
                {
                    Ngtcp2Native.ExtendMaxStreamsUni(conn, 1);
                }
            }

            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnStreamReset(nint conn, long streamId, ulong finalSize, ulong appErrorCode, void* userData, void* streamUserData)
    {
        try
        {
            var self = From(userData);
            if (self._streams.TryGetValue(streamId, out var stream))
            {
                stream.OnClosed(new QuicException($"stream {streamId} reset by the peer (error {appErrorCode})"));
            }

            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnExtendMaxLocalStreamsBidi(nint conn, ulong maxStreams, void* userData)
    {
        try
        {
            var self = From(userData);
            var waiter = self._streamsAvailable;
            self._streamsAvailable = null;
            waiter?.TrySetResult();
            return 0;
        }
        catch
        {
            return ErrCallbackFailure;
        }
    }

    [UnmanagedCallersOnly]
    private static void OnRand(byte* dest, nuint length, void* randContext) =>
        RandomNumberGenerator.Fill(new Span<byte>(dest, (int)length));

    [UnmanagedCallersOnly]
    private static int OnGetNewConnectionId(nint conn, Cid* cid, byte* token, nuint cidLength, void* userData)
    {
        cid->DataLength = cidLength;
        RandomNumberGenerator.Fill(new Span<byte>(cid->Data, (int)cidLength));
        var self = From(userData);
        if (self._listener is null)
        {
            RandomNumberGenerator.Fill(new Span<byte>(token, StatelessResetTokenLength)); // a client has no listener to answer for it
        }
        else
        {
            self._listener.StatelessResetToken(new ReadOnlySpan<byte>(cid->Data, (int)cidLength), new Span<byte>(token, StatelessResetTokenLength));
            self.RouteLocked(new ReadOnlySpan<byte>(cid->Data, (int)cidLength));
        }

        return 0;
    }

    /// <summary>ngtcp2 checked the token; the read that carried the reset then ends the connection (draining).</summary>
    [UnmanagedCallersOnly]
    private static int OnStatelessReset(nint conn, void* reset, void* userData)
    {
        From(userData)._statelessReset = true;
        return 0;
    }
}
