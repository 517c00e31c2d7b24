using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <content>Raw frames, stream helpers and the session pair the tests run on.</content>
public sealed partial class YamuxSessionTests
{
    private static byte[] Frame(YamuxFrameType type, YamuxFlags flags, uint stream, uint length)
    {
        var frame = new byte[12];
        frame[1] = (byte)type;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)flags);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), stream);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), length);
        return frame;
    }

    private static async Task<List<(YamuxFrameType, YamuxFlags, uint, uint)>> ReadFramesAsync(ConnectionContext connection, int count)
    {
        var frames = new List<(YamuxFrameType, YamuxFlags, uint, uint)>();
        var input = connection.Transport.Input;
        while (frames.Count < count)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            var buffer = result.Buffer;
            while (frames.Count < count && buffer.Length >= 12)
            {
                var bytes = buffer.Slice(0, 12).ToArray();
                var type = (YamuxFrameType)bytes[1];
                var length = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(8));
                frames.Add((type, (YamuxFlags)BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(2)), BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4)), length));
                buffer = buffer.Slice(12 + (type == YamuxFrameType.Data ? length : 0));
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            Assert.False(result.IsCompleted && frames.Count < count, "the connection closed before the frames expected");
        }

        return frames;
    }

    /// <summary>Whichever stream the peer opened next (workers opening at once may each get another's).</summary>
    private static async Task<YamuxStream> AcceptAnyAsync(YamuxSession session)
        => (await session.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;

    /// <summary>Writes as fast as the window allows until the stream is reset under it.</summary>
    private static async Task FloodAsync(YamuxStream stream)
    {
        var chunk = new byte[16 * 1024];
        try
        {
            while (!(await stream.Transport.Output.WriteAsync(chunk)).IsCompleted && !stream.ConnectionClosed.IsCancellationRequested)
            {
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or ConnectionResetException or OperationCanceledException)
        {
            // The reset reached the flooding side.
        }
    }

    /// <summary>Writes one byte so the SYN goes out, then accepts the stream on the server.</summary>
    private static async Task<YamuxStream?> AcceptAfterWriteAsync(SessionPair pair, YamuxStream stream)
    {
        await stream.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("x"));
        return await pair.Server.AcceptStreamAsync().AsTask().WaitAsync(Timeout);
    }

    internal static async Task EchoAsync(YamuxStream stream)
    {
        await using (stream)
        {
            var input = stream.Transport.Input;
            while (true)
            {
                var result = await input.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    await stream.Transport.Output.WriteAsync(segment);
                }

                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            await stream.Transport.Output.CompleteAsync();
        }
    }

    private static async Task<string> ReadStringAsync(ConnectionContext connection, int length)
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            if (result.Buffer.Length >= length)
            {
                var text = Encoding.ASCII.GetString(result.Buffer.Slice(0, length).ToArray());
                input.AdvanceTo(result.Buffer.GetPosition(length));
                return text;
            }

            Assert.False(result.IsCompleted, "the stream ended early");
            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    internal static async Task<byte[]> ReadToEndAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        var received = new ArrayBufferWriter<byte>();
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            foreach (var segment in result.Buffer)
            {
                received.Write(segment.Span);
            }

            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return received.WrittenSpan.ToArray();
            }
        }
    }

    internal static async Task WaitUntilAsync(Func<bool> condition, string because)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {because}");
            await Task.Delay(10);
        }
    }

    private async Task<SessionPair> SessionPairAsync(YamuxOptions? client = null, YamuxOptions? server = null)
    {
        var clientConnection = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        var serverConnection = (await _listener.AcceptAsync())!;
        var pair = new SessionPair(
            new YamuxSession(clientConnection, isClient: true, client),
            new YamuxSession(serverConnection, isClient: false, server),
            clientConnection,
            serverConnection);
        pair.Client.Start();
        pair.Server.Start();
        return pair;
    }

    private sealed record SessionPair(YamuxSession Client, YamuxSession Server, ConnectionContext ClientConnection, ConnectionContext ServerConnection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            await ClientConnection.DisposeAsync();
            await ServerConnection.DisposeAsync();
        }
    }
}
