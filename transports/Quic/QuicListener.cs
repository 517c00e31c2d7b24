using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Channels;

namespace Forwarder.Transports.Quic;

/// <summary>
/// The server side: one UDP socket for all connections. Datagrams are routed to connections by their
/// destination connection ID; a client Initial with an unknown one starts a connection, which
/// <see cref="AcceptAsync"/> returns once its handshake completes. An unknown version is answered with
/// Version Negotiation, a short header for an unknown connection with a stateless reset.
/// </summary>
internal sealed class QuicListener : IAsyncDisposable
{
    private const int DatagramBufferSize = 64 * 1024;
    private const int LocalCidLength = 16;
    private const int SockAddrStorage = 128;
    private const int MaxReceivesPerDrain = 64;
    private const int MaxReply = 256;
    private const int MinInitialDatagram = 1200; // smaller datagrams get no Version Negotiation (RFC 9000 14.1)
    private const int MaxStatelessReset = 41;
    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockAddrInLength = 16;
    private const int SockAddrIn6Length = 28;

    private readonly Socket _socket;
    private readonly QuicServerOptions _options;
    private readonly SocketAddress _local;
    private readonly ConcurrentDictionary<byte[], QuicConnection> _routes = new(QuicConnectionIdComparer.Instance);
    private readonly ConcurrentDictionary<byte[], QuicConnection>.AlternateLookup<ReadOnlySpan<byte>> _routesBySpan;
    private readonly ConcurrentDictionary<QuicConnection, byte> _handshaking = new();
    private readonly Channel<QuicConnection> _accepted = Channel.CreateUnbounded<QuicConnection>();
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(DatagramBufferSize, pinned: true);
    private readonly byte[] _from = GC.AllocateUninitializedArray<byte>(SockAddrStorage, pinned: true);
    private readonly byte[] _reply = GC.AllocateUninitializedArray<byte>(MaxReply, pinned: true);
    private readonly byte[] _resetKey;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiveLoop;

    private QuicListener(Socket socket, QuicServerOptions options)
    {
        _socket = socket;
        _options = options;
        _local = socket.LocalEndPoint!.Serialize();
        _routesBySpan = _routes.GetAlternateLookup<ReadOnlySpan<byte>>();
        _resetKey = options.StatelessResetKey ?? RandomNumberGenerator.GetBytes(32);
        _receiveLoop = ReceiveLoopAsync();
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public static QuicListener Bind(IPEndPoint endPoint, QuicServerOptions options)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(endPoint);
            UdpNative.TryEnableGro(socket);
            return new QuicListener(socket, options);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask<QuicConnection> AcceptAsync(CancellationToken cancellationToken = default) =>
        _accepted.Reader.ReadAsync(cancellationToken);

    /// <summary>
    /// Sends a datagram that is not QUIC from the listener's port (hole-punching probes and rendezvous
    /// tokens), with <paramref name="hopLimit"/> hops at most if given: a limit on that datagram alone,
    /// so the connections' packets sent meanwhile keep the socket's usual TTL.
    /// </summary>
    /// <exception cref="SocketException">The datagram could not be sent (no route, another address family, a full send buffer).</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed.</exception>
    public unsafe void Send(ReadOnlySpan<byte> datagram, IPEndPoint to, int? hopLimit = null)
    {
        Span<byte> address = stackalloc byte[SockAddrIn6Length];
        var (length, ipv4) = WriteSockAddr(to, _socket.AddressFamily, address);
        // The reference keeps the descriptor open (not closed and reused under this send) when a
        // caller races the listener's disposal; after it, DangerousAddRef throws ObjectDisposedException.
        var added = false;
        int errno;
        try
        {
            _socket.SafeHandle.DangerousAddRef(ref added);
            var fd = _socket.SafeHandle.DangerousGetHandle();
            fixed (byte* data = datagram)
            fixed (byte* peer = address)
            {
                errno = hopLimit is { } hops
                    ? UdpNative.SendWithHopLimit(fd, data, datagram.Length, peer, (uint)length, ipv4, hops)
                    : UdpNative.Send(fd, data, datagram.Length, datagram.Length, peer, (uint)length);
            }
        }
        finally
        {
            if (added)
            {
                _socket.SafeHandle.DangerousRelease();
            }
        }

        if (errno != 0)
        {
            throw new SocketException((int)UdpNative.ToSocketError(errno));
        }
    }

    /// <summary>
    /// <paramref name="to"/> as a sockaddr for a socket of <paramref name="family"/>, without allocating:
    /// an IPv6 socket reaches IPv4 peers at their mapped address, an IPv4 socket mapped ones as IPv4.
    /// </summary>
    /// <returns>The sockaddr's length, and whether the datagram leaves as IPv4.</returns>
    private static (int Length, bool IPv4) WriteSockAddr(IPEndPoint to, AddressFamily family, Span<byte> into)
    {
        into.Clear();
        Span<byte> ipv6 = stackalloc byte[16];
        var address = to.Address;
        var ipv4 = address.AddressFamily == AddressFamily.InterNetwork;
        if (ipv4)
        {
            address.TryWriteBytes(ipv6[12..], out _);
            ipv6[10] = ipv6[11] = 0xff; // ::ffff:a.b.c.d
        }
        else
        {
            address.TryWriteBytes(ipv6, out _);
            ipv4 = address.IsIPv4MappedToIPv6;
        }

        BinaryPrimitives.WriteUInt16BigEndian(into[2..], (ushort)to.Port);
        if (family == AddressFamily.InterNetwork)
        {
            if (!ipv4)
            {
                throw new SocketException((int)SocketError.AddressFamilyNotSupported);
            }

            BitConverter.TryWriteBytes(into, (ushort)AfInet);
            ipv6[12..].CopyTo(into[4..]);
            return (SockAddrInLength, true);
        }

        BitConverter.TryWriteBytes(into, (ushort)AfInet6);
        ipv6.CopyTo(into[8..]);
        if (!ipv4)
        {
            BitConverter.TryWriteBytes(into[24..], (uint)address.ScopeId);
        }

        return (SockAddrIn6Length, ipv4);
    }

    internal void Route(byte[] connectionId, QuicConnection connection) => _routes[connectionId] = connection;

    internal void Unroute(byte[] connectionId) => _routes.TryRemove(connectionId, out _);

    /// <summary>The stateless reset token for one of this listener's connection IDs: the same for the same key and ID.</summary>
    internal void StatelessResetToken(ReadOnlySpan<byte> connectionId, Span<byte> token)
    {
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_resetKey, connectionId, mac);
        mac[..Ngtcp2Native.StatelessResetTokenLength].CopyTo(token);
    }

    private async Task ReceiveLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                // A zero-byte peek waits until a datagram is there without taking it; Drain reads them all.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // ICMP errors for one peer's datagrams must not stop the others
            }

            Drain();
        }
    }

    /// <summary>Reads what the socket holds; each run of datagrams for one connection is read under one lock trip.</summary>
    private unsafe void Drain()
    {
        var fd = _socket.SafeHandle.DangerousGetHandle(); // the socket outlives the receive loop
        fixed (byte* buffer = _buffer)
        fixed (byte* from = _from)
        {
            for (var i = 0; i < MaxReceivesPerDrain; i++)
            {
                var fromLength = (uint)_from.Length;
                var received = UdpNative.Receive(fd, buffer, _buffer.Length, from, &fromLength, out var segmentSize);
                if (received == -UdpNative.WouldBlock)
                {
                    return;
                }

                if (received <= 0)
                {
                    continue; // an ICMP error for one peer's datagrams, or a truncated datagram
                }

                QuicConnection? run = null;
                var runStart = 0;
                for (var offset = 0; offset < received; offset += segmentSize)
                {
                    var datagram = new ReadOnlySpan<byte>(buffer + offset, Math.Min(segmentSize, received - offset));
                    var target = Dispatch(datagram, from, fromLength);
                    if (target != run)
                    {
                        run?.OnDatagrams(new ReadOnlySpan<byte>(buffer + runStart, offset - runStart), segmentSize);
                        run = target;
                        runStart = offset;
                    }
                }

                run?.OnDatagrams(new ReadOnlySpan<byte>(buffer + runStart, received - runStart), segmentSize);
            }
        }
    }

    /// <returns>The connection <paramref name="datagram"/> belongs to, or null when it started one or was dropped.</returns>
    private unsafe QuicConnection? Dispatch(ReadOnlySpan<byte> datagram, byte* from, uint fromLength)
    {
        Ngtcp2Native.VersionCid ids;
        int decoded;
        fixed (byte* packet = datagram)
        {
            decoded = Ngtcp2Native.DecodeVersionCid(&ids, packet, (nuint)datagram.Length, LocalCidLength);
        }

        if (decoded == Ngtcp2Native.ErrVersionNegotiation)
        {
            SendVersionNegotiation(ids, datagram.Length, from, fromLength);
            return null;
        }

        if (decoded != 0)
        {
            return null; // not QUIC
        }

        if (_routesBySpan.TryGetValue(new ReadOnlySpan<byte>(ids.Dcid, (int)ids.DcidLength), out var existing))
        {
            return existing;
        }

        if ((datagram[0] & 0x80) == 0)
        {
            // A short header for a connection we do not have (closed, or lost in a restart): tell the peer at once.
            // Not filtered on QUIC's fixed bit: ngtcp2 peers clear it on a whole connection at random (greasing).
            SendStatelessReset(new ReadOnlySpan<byte>(ids.Dcid, (int)ids.DcidLength), datagram.Length, from, fromLength);
            return null;
        }

        var peer = new SocketAddress(_socket.AddressFamily, (int)fromLength);
        new ReadOnlySpan<byte>(from, (int)fromLength).CopyTo(peer.Buffer.Span);
        try
        {
            if (QuicConnection.Accept(this, _socket, _local, peer, datagram, _options) is { } started)
            {
                _ = PublishWhenReadyAsync(started);
            }
        }
        catch (QuicException)
        {
            // a peer we cannot set up a session for: drop its Initial
        }

        return null;
    }

    /// <summary>Answers a long header of a version we do not speak with the one we do (QUIC v1).</summary>
    private unsafe void SendVersionNegotiation(in Ngtcp2Native.VersionCid ids, int datagramLength, byte* to, uint toLength)
    {
        if (datagramLength < MinInitialDatagram)
        {
            return;
        }

        var versions = Ngtcp2Native.ProtoVersionV1;
        nint written;
        fixed (byte* reply = _reply)
        {
            written = Ngtcp2Native.WriteVersionNegotiation(reply, MaxReply, (byte)RandomNumberGenerator.GetInt32(256),
                ids.Scid, ids.ScidLength, ids.Dcid, ids.DcidLength, &versions, 1);
            if (written > 0)
            {
                UdpNative.Send(_socket.SafeHandle.DangerousGetHandle(), reply, (int)written, (int)written, to, toLength);
            }
        }
    }

    /// <summary>
    /// A stateless reset, shorter than the packet that caused it so two endpoints that both lost the
    /// connection cannot keep answering each other (RFC 9000 10.3.3).
    /// </summary>
    private unsafe void SendStatelessReset(ReadOnlySpan<byte> connectionId, int datagramLength, byte* to, uint toLength)
    {
        var length = Math.Min(datagramLength - 1, MaxStatelessReset);
        var randomLength = length - Ngtcp2Native.StatelessResetTokenLength;
        if (randomLength < Ngtcp2Native.MinStatelessResetRandomLength + 1)
        {
            return;
        }

        Span<byte> token = stackalloc byte[Ngtcp2Native.StatelessResetTokenLength];
        StatelessResetToken(connectionId, token);
        Span<byte> random = stackalloc byte[randomLength];
        RandomNumberGenerator.Fill(random);
        fixed (byte* reply = _reply)
        fixed (byte* tokenPtr = token)
        fixed (byte* randomPtr = random)
        {
            var written = Ngtcp2Native.WriteStatelessReset(reply, (nuint)length, tokenPtr, randomPtr, (nuint)randomLength);
            if (written > 0)
            {
                UdpNative.Send(_socket.SafeHandle.DangerousGetHandle(), reply, (int)written, (int)written, to, toLength);
            }
        }
    }

    private async Task PublishWhenReadyAsync(QuicConnection connection)
    {
        _handshaking[connection] = 0;
        try
        {
            await connection.Handshake.WaitAsync(_options.HandshakeTimeout, _stop.Token);
            _handshaking.TryRemove(connection, out _);
            if (_accepted.Writer.TryWrite(connection))
            {
                return;
            }
        }
        catch (Exception)
        {
            // Handshake failed, timed out, or the listener is stopping.
        }

        _handshaking.TryRemove(connection, out _);
        await connection.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _receiveLoop;
        _accepted.Writer.TryComplete();
        foreach (var connection in _handshaking.Keys)
        {
            await connection.DisposeAsync();
        }

        // Connections that finished their handshake but were never accepted: nobody else will close them.
        while (_accepted.Reader.TryRead(out var unclaimed))
        {
            await unclaimed.DisposeAsync();
        }

        _socket.Dispose();
        _stop.Dispose();
    }
}
