using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// Sends a whole <see cref="ReadOnlySequence{T}"/> with one gathering send and no allocation:
/// one reusable event-args instance per connection, completed as a <see cref="ValueTask"/>.
/// </summary>
internal sealed class SocketSender : SocketAsyncEventArgs, IValueTaskSource
{
    private readonly List<ArraySegment<byte>> _segments = new(capacity: 8);
    private ManualResetValueTaskSourceCore<bool> _source;

    public SocketSender() : base(unsafeSuppressExecutionContextFlow: true)
    {
    }

    public ValueTask SendAsync(Socket socket, in ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsSingleSegment)
        {
            if (BufferList is not null)
            {
                BufferList = null;
            }

            SetBuffer(MemoryMarshal.AsMemory(buffer.First));
        }
        else
        {
            SetBuffer(null, 0, 0);
            _segments.Clear();
            foreach (var memory in buffer)
            {
                if (!MemoryMarshal.TryGetArray(memory, out var segment))
                {
                    throw new InvalidOperationException("Send buffers must be backed by arrays.");
                }

                _segments.Add(segment);
            }

            BufferList = _segments;
        }

        _source.Reset();
        if (socket.SendAsync(this))
        {
            return new ValueTask(this, _source.Version);
        }

        return SocketError == SocketError.Success
            ? ValueTask.CompletedTask
            : ValueTask.FromException(new SocketException((int)SocketError));
    }

    protected override void OnCompleted(SocketAsyncEventArgs e)
    {
        if (SocketError == SocketError.Success)
        {
            _source.SetResult(true);
        }
        else
        {
            _source.SetException(new SocketException((int)SocketError));
        }
    }

    void IValueTaskSource.GetResult(short token) => _source.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _source.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _source.OnCompleted(continuation, state, token, flags);
}
