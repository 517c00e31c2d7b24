using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using Forwarder.L7.Http2.Server;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// Answers by path: /echo streams the request body back; /big/N sends N bytes; /trailers sends a
/// body then trailers; /whole sends <see cref="WholeBody"/> whole (or, refused, the ordinary
/// way); /head answers 204 with a <see cref="Pad"/> field and no body; /hold waits (without reading the body) until released; anything else a
/// short fixed body. Counts what it served.
/// </summary>
internal sealed class TestHandler : IHttp2StreamHandler
{
    public static readonly byte[] Fixed = "hello from h2"u8.ToArray();

    public static readonly byte[] WholeBody = [.. Enumerable.Range(0, 1000).Select(static i => (byte)(i % 251))];

    /// <summary>A field value HPACK's Huffman code does not shrink much: digits and letters in turn.</summary>
    public static readonly byte[] Pad = [.. Enumerable.Range(0, 1000).Select(static i => (byte)"q7Z#k0%Xj9"[i % 10])];

    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _completed;
    private int _holding;

    public int Completed => Volatile.Read(ref _completed);

    public int Holding => Volatile.Read(ref _holding);

    /// <summary>The requests the connection answered itself, as "status: reason".</summary>
    public ConcurrentQueue<string> Refusals { get; } = new();

    public void Refused(int status, string reason) => Refusals.Enqueue($"{status}: {reason}");

    /// <summary>Lets every /hold request answer.</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask HandleAsync(Http2ServerStream stream)
    {
        var path = Encoding.ASCII.GetString(stream.Path);
        if (path == "/echo")
        {
            await EchoAsync(stream);
        }
        else if (path.StartsWith("/big/", StringComparison.Ordinal))
        {
            await BigAsync(stream, int.Parse(path["/big/".Length..], System.Globalization.CultureInfo.InvariantCulture));
        }
        else if (path == "/trailers")
        {
            stream.WriteHeaders(200);
            await stream.WriteAsync(Fixed);
            var trailers = new Http2HeaderFields();
            trailers.Add("grpc-status"u8, "0"u8);
            trailers.Add("grpc-message"u8, "fine"u8);
            stream.Complete(trailers);
        }
        else if (path == "/x-v")
        {
            // The x-v field's value as it reached the handler, byte for byte.
            stream.WriteHeaders(200);
            await stream.WriteAsync(stream.RequestHeaders.Get("x-v"u8).ToArray());
            stream.Complete();
        }
        else if (path == "/drop")
        {
            // Reads none of the body; answers once the client has sent all of it.
            await stream.RequestBody.CompleteAsync();
            stream.WriteHeaders(200);
            while (!stream.RemoteClosed)
            {
                await Task.Delay(20, stream.Aborted);
            }

            stream.Complete();
        }
        else if (path == "/whole")
        {
            if (!stream.TryWriteResponse(200, new Http2HeaderFields(), new ReadOnlySequence<byte>(WholeBody)))
            {
                stream.WriteHeaders(200);
                await stream.WriteAsync(WholeBody);
                stream.Complete();
            }
        }
        else if (path == "/head")
        {
            var headers = new Http2HeaderFields();
            headers.Add("x-pad"u8, Pad);
            stream.WriteHeaders(204, headers, endStream: true);
        }
        else if (path == "/hold")
        {
            Interlocked.Increment(ref _holding);
            await _release.Task.WaitAsync(stream.Aborted);
            stream.WriteHeaders(200);
            stream.Complete();
        }
        else
        {
            var headers = new Http2HeaderFields();
            headers.Add("content-type"u8, "text/plain"u8);
            stream.WriteHeaders(200, headers);
            await stream.WriteAsync(Fixed);
            stream.Complete();
        }

        Interlocked.Increment(ref _completed);
    }

    private static async Task EchoAsync(Http2ServerStream stream)
    {
        stream.WriteHeaders(200);
        while (true)
        {
            var read = await stream.RequestBody.ReadAsync();
            foreach (var segment in read.Buffer)
            {
                if (!await stream.WriteAsync(segment))
                {
                    return;
                }
            }

            stream.RequestBody.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        stream.Complete();
    }

    private static async Task BigAsync(Http2ServerStream stream, int length)
    {
        stream.WriteHeaders(200);
        var chunk = new byte[16 * 1024];
        for (var i = 0; i < chunk.Length; i++)
        {
            chunk[i] = (byte)('a' + (i % 26));
        }

        for (var sent = 0; sent < length; sent += chunk.Length)
        {
            if (!await stream.WriteAsync(chunk.AsMemory(0, Math.Min(chunk.Length, length - sent))))
            {
                return;
            }
        }

        stream.Complete();
    }
}
