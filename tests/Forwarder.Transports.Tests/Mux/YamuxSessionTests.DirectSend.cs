using System.Buffers;
using System.Security.Cryptography;
using Forwarder.Transports.Features;
using Forwarder.Transports.Mux;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <content>Sending straight from the caller's buffer (IDirectSendFeature), as the L4 pump does.</content>
public sealed partial class YamuxSessionTests
{
    [Fact]
    public async Task DirectSend_BehindAHeaderWrittenThroughThePipe_ManyStreamsAtOnce_ArrivesWholeAndInOrder()
    {
        await using var pair = await SessionPairAsync();
        const int Streams = 40;
        const int Size = 2 * 1024 * 1024;

        var received = Task.Run(async () =>
        {
            var streams = new List<Task<byte[]>>();
            for (var i = 0; i < Streams; i++)
            {
                var stream = await AcceptAnyAsync(pair.Server);
                streams.Add(Task.Run(async () =>
                {
                    await using (stream)
                    {
                        return await ReadToEndAsync(stream);
                    }
                }));
            }

            return await Task.WhenAll(streams);
        });

        // Each stream writes a header through its pipe, then sends the rest directly: with 40
        // streams the session's queue fills, so some headers are still in their pipes when the
        // direct sends begin, and must not be overtaken.
        var sent = await Task.WhenAll(Enumerable.Range(0, Streams).Select(i => Task.Run(async () =>
        {
            await using var stream = pair.Client.OpenStream();
            var data = RandomNumberGenerator.GetBytes(Size);
            BitConverter.TryWriteBytes(data, i);
            await stream.Transport.Output.WriteAsync(data.AsMemory(0, 100));
            var direct = stream.Features.Get<IDirectSendFeature>()!;
            for (var offset = 100; offset < data.Length; offset += 150_000)
            {
                await direct.SendAsync(new ReadOnlySequence<byte>(data, offset, Math.Min(150_000, data.Length - offset)));
            }

            await stream.Transport.Output.CompleteAsync();
            return data;
        }))).WaitAsync(TimeSpan.FromSeconds(120));

        var byStream = (await received.WaitAsync(TimeSpan.FromSeconds(120))).ToDictionary(data => BitConverter.ToInt32(data));
        Assert.Equal(Streams, byStream.Count);
        foreach (var data in sent)
        {
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(byStream[BitConverter.ToInt32(data)]));
        }
    }

    [Fact]
    public async Task DirectSend_ToAStreamThePeerReset_ThrowsConnectionReset()
    {
        await using var pair = await SessionPairAsync();
        await using var stream = pair.Client.OpenStream();
        await using var atServer = (await AcceptAfterWriteAsync(pair, stream))!;
        atServer.Abort(new ConnectionAbortedException("test"));

        var direct = stream.Features.Get<IDirectSendFeature>()!;
        var chunk = new ReadOnlySequence<byte>(new byte[64 * 1024]);
        await Assert.ThrowsAsync<ConnectionResetException>(async () =>
        {
            // The reset arrives at some point; until then the window takes what is sent.
            while (true)
            {
                await direct.SendAsync(chunk).AsTask().WaitAsync(Timeout);
            }
        });
    }
}
