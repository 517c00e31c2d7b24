using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>One frame as the test peer saw it on the wire.</summary>
internal readonly record struct WireFrame(YamuxFrameType Type, YamuxFlags Flags, uint StreamId, uint Length, byte[] Payload);

/// <summary>
/// A yamux session under test over an in-memory connection, with the test as the raw peer: it
/// writes frames byte for byte (a whole batch in one flush, so the session reads it in one go)
/// and reads back every frame the session writes. The session's output can be held at a gate to
/// see how its writer batches while a flush is in flight.
/// </summary>
internal sealed class YamuxTestPeer : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Pipe _toSession = new();
    private readonly Pipe _fromSession = new();

    public YamuxTestPeer(bool sessionIsClient, YamuxOptions? options = null)
    {
        Output = new GatedWriter(_fromSession.Writer);
        Connection = new DefaultConnectionContext("yamux-test", new DuplexPipe(_toSession.Reader, Output), new DuplexPipe(_fromSession.Reader, _toSession.Writer));
        Session = new YamuxSession(Connection, sessionIsClient, options ?? new YamuxOptions { KeepAliveInterval = TimeSpan.Zero });
        Session.Start();
    }

    public YamuxSession Session { get; }

    public DefaultConnectionContext Connection { get; }

    /// <summary>The session's output: counts flushes and can hold them.</summary>
    public GatedWriter Output { get; }

    public static byte[] Frame(YamuxFrameType type, YamuxFlags flags, uint stream, uint length, ReadOnlySpan<byte> payload = default)
    {
        var frame = new byte[12 + payload.Length];
        frame[1] = (byte)type;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)flags);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), stream);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), length);
        payload.CopyTo(frame.AsSpan(12));
        return frame;
    }

    public static byte[] Data(uint stream, int length, YamuxFlags flags = YamuxFlags.None)
        => Frame(YamuxFrameType.Data, flags, stream, (uint)length, new byte[length]);

    /// <summary>Sends frames to the session in one write and one flush: it reads them as one batch.</summary>
    public async Task SendAsync(params byte[][] frames)
    {
        foreach (var frame in frames)
        {
            _toSession.Writer.Write(frame);
        }

        await _toSession.Writer.FlushAsync();
    }

    /// <summary>Reads the session's frames until one matches <paramref name="last"/>; returns all of them, that one included.</summary>
    public async Task<List<WireFrame>> ReadUntilAsync(Func<WireFrame, bool> last)
    {
        var frames = new List<WireFrame>();
        var input = _fromSession.Reader;
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            var buffer = result.Buffer;
            try
            {
                while (buffer.Length >= 12)
                {
                    var header = buffer.Slice(0, 12).ToArray();
                    var type = (YamuxFrameType)header[1];
                    var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
                    var payloadLength = type == YamuxFrameType.Data ? length : 0;
                    if (buffer.Length < 12 + payloadLength)
                    {
                        break;
                    }

                    var frame = new WireFrame(type, (YamuxFlags)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), length, buffer.Slice(12, payloadLength).ToArray());
                    buffer = buffer.Slice(12 + payloadLength);
                    frames.Add(frame);
                    if (last(frame))
                    {
                        return frames;
                    }
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }

            Assert.False(result.IsCompleted, $"the session's output ended after {frames.Count} frames");
        }
    }

    /// <summary>Pings the session and reads up to its answer: every frame the session wrote before it.</summary>
    public async Task<List<WireFrame>> PingAsync(uint id)
    {
        await SendAsync(Frame(YamuxFrameType.Ping, YamuxFlags.Syn, 0, id));
        return await ReadUntilAsync(frame => frame.Type == YamuxFrameType.Ping && frame.Length == id);
    }

    public async ValueTask DisposeAsync()
    {
        Output.Open();
        await Session.DisposeAsync();
        await _toSession.Writer.CompleteAsync();
        await _fromSession.Reader.CompleteAsync();
    }

    /// <summary>A writer that counts flushes and, until opened, holds each one in flight.</summary>
    internal sealed class GatedWriter(PipeWriter inner) : PipeWriter
    {
        private readonly Lock _lock = new();
        private TaskCompletionSource _current = CreateOpenGate();
        private int _flushes;

        public int Flushes => Volatile.Read(ref _flushes);

        /// <summary>From now on every flush waits for <see cref="Open"/>.</summary>
        public void Close()
        {
            lock (_lock)
            {
                if (_current.Task.IsCompleted)
                {
                    _current = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
        }

        public void Open()
        {
            lock (_lock)
            {
                _current.TrySetResult();
            }
        }

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _flushes);
            Task gate;
            lock (_lock)
            {
                gate = _current.Task;
            }

            return gate.IsCompleted ? inner.FlushAsync(cancellationToken) : FlushLaterAsync(gate, cancellationToken);
        }

        private async ValueTask<FlushResult> FlushLaterAsync(Task gate, CancellationToken cancellationToken)
        {
            await gate;
            return await inner.FlushAsync(cancellationToken);
        }

        private static TaskCompletionSource CreateOpenGate()
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gate.SetResult();
            return gate;
        }
    }
}
