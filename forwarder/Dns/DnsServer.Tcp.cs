using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Forwarder.Dns;

/// <content>
/// DNS over TCP (RFC 7766): length-prefixed messages, pipelined. Each query is answered as soon as
/// it can be, so answers may come out of order; a connection idle for <see cref="IdleTimeout"/> closes.
/// </content>
internal sealed partial class DnsServer
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Connections served at once; more wait in the accept queue.</summary>
    private const int MaxConnections = 1024;

    /// <summary>Upstream queries in flight per connection before reading pauses.</summary>
    private const int MaxPipelined = 64;

    private int _connections;

    private async Task AcceptTcpAsync(Socket listener)
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                var socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                if (Interlocked.Increment(ref _connections) > MaxConnections)
                {
                    Interlocked.Decrement(ref _connections);
                    socket.Dispose();
                    continue;
                }

                Track(ServeTcpAsync(socket));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || (ex is SocketException && _stopping.IsCancellationRequested))
        {
            // Stopping.
        }
    }

    private async Task ServeTcpAsync(Socket socket)
    {
        var message = ArrayPool<byte>.Shared.Rent(DnsHeader.MaxMessage);
        var response = ArrayPool<byte>.Shared.Rent(DnsHeader.MaxMessage + 2);
        var name = new byte[DnsName.MaxLength];
        using var writeLock = new SemaphoreSlim(1, 1);
        using var pipelined = new SemaphoreSlim(MaxPipelined, MaxPipelined);
        using var closed = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(closed.Token);
        List<Task> forwards = [];
        try
        {
            while (true)
            {
                idle.CancelAfter(IdleTimeout);
                if (!await ReceiveExactlyAsync(socket, message.AsMemory(0, 2), idle.Token).ConfigureAwait(false))
                {
                    break;
                }

                var length = BinaryPrimitives.ReadUInt16BigEndian(message);
                if (length < DnsHeader.Size || !await ReceiveExactlyAsync(socket, message.AsMemory(0, length), idle.Token).ConfigureAwait(false))
                {
                    // Not even a header to answer to: the stream cannot be trusted further.
                    _metrics.Drop();
                    break;
                }

                var answered = _handler!.Answer(message.AsSpan(0, length), response.AsSpan(2), name, udp: false, out var query, out var forward);
                if (answered > 0)
                {
                    await SendFramedAsync(socket, writeLock, response, answered, closed.Token).ConfigureAwait(false);
                }
                else if (forward)
                {
                    await pipelined.WaitAsync(idle.Token).ConfigureAwait(false);
                    forwards.RemoveAll(t => t.IsCompleted);
                    forwards.Add(ForwardTcpAsync(socket, writeLock, pipelined, message.AsSpan(0, length).ToArray(), DnsHandler.Key(name, query), query, closed.Token));
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException or IOException)
        {
            // Idle, reset, or stopping: answers still being resolved for the connection are dropped.
            await closed.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            // After the client's last query (it may half-close) its pipelined answers still go out.
            await Task.WhenAll(forwards).ConfigureAwait(false);
            socket.Dispose();
            ArrayPool<byte>.Shared.Return(message);
            ArrayPool<byte>.Shared.Return(response);
            Interlocked.Decrement(ref _connections);
        }
    }

    /// <remarks>Never throws: the connection awaits it before it closes.</remarks>
    private async Task ForwardTcpAsync(Socket socket, SemaphoreSlim writeLock, SemaphoreSlim pipelined, byte[] message, byte[] key, DnsQuery query, CancellationToken closed)
    {
        var response = ArrayPool<byte>.Shared.Rent(DnsHeader.MaxMessage + 2);
        try
        {
            var (length, result) = await _handler!.Forwarding.ResolveAsync(key, query, message, response.AsMemory(2), DnsHeader.MaxMessage, closed).ConfigureAwait(false);
            _metrics.Answered(query.Type, result);
            await SendFramedAsync(socket, writeLock, response, length, closed).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Stopping, or the client left before its answer.
        }
        catch (Exception ex)
        {
            LogForwardFailed(_logger, ex.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(response);
            pipelined.Release();
        }
    }

    /// <summary>Sends <paramref name="length"/> bytes from offset 2 of <paramref name="framed"/>, prefixed with their length, whole.</summary>
    private static async Task SendFramedAsync(Socket socket, SemaphoreSlim writeLock, byte[] framed, int length, CancellationToken cancellationToken)
    {
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)length);
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var remaining = framed.AsMemory(0, length + 2);
            while (remaining.Length > 0)
            {
                remaining = remaining[await socket.SendAsync(remaining, SocketFlags.None, cancellationToken).ConfigureAwait(false)..];
            }
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>Fills <paramref name="buffer"/>; false when the peer closed before the first byte.</summary>
    private static async ValueTask<bool> ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var first = true;
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return first ? false : throw new IOException("the client closed the connection mid-message");
            }

            first = false;
            buffer = buffer[read..];
        }

        return true;
    }
}
