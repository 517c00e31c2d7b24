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
    /// <summary>
    /// Segments per gathering send. .NET pins each segment per call and allocates its iovec
    /// arrays beyond eight, so longer sequences go out in several sends.
    /// </summary>
    public const int MaxSegmentsPerSend = 8;

    private readonly List<ArraySegment<byte>> _segments = new(capacity: 8);
    private ManualResetValueTaskSourceCore<bool> _source;

    public SocketSender() : base(unsafeSuppressExecutionContextFlow: true)
    {
    }

    /// <summary>Splits off the first <see cref="MaxSegmentsPerSend"/> segments of <paramref name="buffer"/>.</summary>
    /// <remarks><paramref name="buffer"/> is taken by value: callers pass the variable that receives <paramref name="rest"/>.</remarks>
    public static ReadOnlySequence<byte> FirstSegments(ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> rest)
    {
        if (buffer.IsSingleSegment)
        {
            rest = default;
            return buffer;
        }

        var position = buffer.Start;
        var end = buffer.Start;
        for (var i = 0; i < MaxSegmentsPerSend && buffer.TryGet(ref position, out var segment); i++)
        {
            end = buffer.GetPosition(segment.Length, end);
        }

        var first = buffer.Slice(buffer.Start, end);
        rest = buffer.Slice(end);
        return first;
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
