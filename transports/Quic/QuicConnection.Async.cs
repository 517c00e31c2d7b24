using System.Net;
using System.Net.Sockets;

namespace Forwarder.Transports.Quic;

// The connection's awaiting members, outside the unsafe part (C# forbids await in unsafe contexts).
internal sealed partial class QuicConnection
{
    public static Task<QuicConnection> ConnectAsync(IPEndPoint server, QuicClientOptions options,
        CancellationToken cancellationToken = default)
        => ConnectAsync(new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp), server, options, cancellationToken);

    /// <summary>
    /// Connects over <paramref name="socket"/>, which the connection then owns (disposed with it, or
    /// on failure): a socket already bound and used, as hole punching needs, keeps its NAT mapping.
    /// </summary>
    public static async Task<QuicConnection> ConnectAsync(Socket socket, IPEndPoint server, QuicClientOptions options,
        CancellationToken cancellationToken = default)
    {
        QuicConnection? connection = null;
        try
        {
            await socket.ConnectAsync(server, cancellationToken);
            connection = new QuicConnection(socket, options);
            connection.StartClient(options);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.HandshakeTimeout);
            await connection._handshake.Task.WaitAsync(timeout.Token);
            return connection;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await DisposeOrCloseAsync(connection, socket);
            throw new QuicException($"QUIC handshake with {server} timed out after {options.HandshakeTimeout}");
        }
        catch
        {
            await DisposeOrCloseAsync(connection, socket);
            throw;
        }
    }

    private static async ValueTask DisposeOrCloseAsync(QuicConnection? connection, Socket socket)
    {
        if (connection is null)
        {
            socket.Dispose();
        }
        else
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>Opens a bidirectional stream, waiting while the peer's stream limit is reached.</summary>
    public async ValueTask<QuicStream> OpenStreamAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (TryOpenStream(out var wait) is { } stream)
            {
                return stream;
            }

            await wait!.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Waits for the next bidirectional stream the peer opens.</summary>
    public ValueTask<QuicStream> AcceptStreamAsync(CancellationToken cancellationToken = default) =>
        _acceptedStreams.Reader.ReadAsync(cancellationToken);

    private async Task ReceiveLoopAsync()
    {
        while (true)
        {
            try
            {
                // A zero-byte peek waits until a datagram is there without taking it; DrainSocket reads them all.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // ICMP port unreachable from an earlier datagram: ngtcp2's loss recovery and timers decide.
                continue;
            }
            catch (Exception e)
            {
                lock (_gate)
                {
                    FailLocked(new QuicException($"UDP receive failed: {e.Message}"));
                }

                return;
            }

            if (!DrainSocket())
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        BeginDispose();
        _stop.Cancel();
        await _receiveLoop;
        await _timer.DisposeAsync();
        if (_listener is null)
        {
            _socket.Dispose();
        }

        ReleaseNative();
        _self.Free();
        _stop.Dispose();
    }
}
