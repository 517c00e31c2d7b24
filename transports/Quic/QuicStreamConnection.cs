using System.IO.Pipelines;
using System.Net;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.Transports.Quic;

/// <summary>
/// One QUIC stream as a Kestrel <see cref="ConnectionContext"/>, so a proxied connection over QUIC
/// looks like a TCP socket. Two pumps copy between the stream and the context's pipes; the input
/// pipe's pause threshold holds reads back, which holds the stream's flow-control window shut.
/// </summary>
internal sealed class QuicStreamConnection : ConnectionContext
{
    private const int ReadSize = 16 * 1024;

    private readonly QuicStream _stream;
    private readonly Pipe _input = new(new PipeOptions(useSynchronizationContext: false));
    private readonly Pipe _output = new(new PipeOptions(useSynchronizationContext: false));
    private readonly CancellationTokenSource _closed = new();
    private readonly Task _receiving;
    private readonly Task _sending;
    private IDictionary<object, object?>? _items;

    public QuicStreamConnection(QuicStream stream, EndPoint? localEndPoint, EndPoint? remoteEndPoint)
    {
        _stream = stream;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        ConnectionId = $"quic-{Guid.NewGuid():N}-{stream.Id}";
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        _receiving = ReceiveAsync();
        _sending = SendAsync();
        _ = SignalClosedAsync();
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features { get; } = new FeatureCollection();

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _stream.Abort();
        _output.Reader.CancelPendingRead();
    }

    /// <summary>Sends what the application wrote, then resets the stream if the peer has not finished its side.</summary>
    public override async ValueTask DisposeAsync()
    {
        _input.Reader.Complete();
        _output.Writer.Complete();
        await _sending;
        if (!_receiving.IsCompleted)
        {
            _stream.Abort();
        }

        await _receiving;
    }

    private async Task SignalClosedAsync()
    {
        await Task.WhenAll(_receiving, _sending);
        await _closed.CancelAsync();
    }

    private async Task ReceiveAsync()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var n = await _stream.ReadAsync(_input.Writer.GetMemory(ReadSize));
                if (n == 0)
                {
                    break;
                }

                _input.Writer.Advance(n);
                var flush = await _input.Writer.FlushAsync();
                if (flush.IsCompleted)
                {
                    break; // the application stopped reading
                }
            }
        }
        catch (QuicException e)
        {
            // The peer reset the stream, or the connection under it failed (closed, idle timeout):
            // to the application a reset, as on a TCP socket, so a proxy resets its other side
            // at once rather than end it as if the stream were complete.
            error = new ConnectionResetException(e.Message, e);
        }
        catch (Exception e)
        {
            error = e;
        }

        await _input.Writer.CompleteAsync(error);
    }

    private async Task SendAsync()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await _output.Reader.ReadAsync();
                if (result.IsCanceled)
                {
                    break; // aborted
                }

                foreach (var segment in result.Buffer)
                {
                    await _stream.WriteAsync(segment);
                }

                _output.Reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    _stream.CompleteWrites();
                    break;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        await _output.Reader.CompleteAsync(error);
    }
}
