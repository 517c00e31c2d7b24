using System.Buffers;
using System.Net;
using System.Text;
using Forwarder.L7.Http2.Client;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>A response read to its end.</summary>
internal sealed record Http2TestResponse(int Status, byte[] Body, Dictionary<string, string> Headers, Dictionary<string, string> Trailers)
{
    public string Text => Encoding.UTF8.GetString(Body);
}

/// <summary>Request heads, whole exchanges and connections for the client tests.</summary>
internal static class Http2ClientKit
{
    /// <summary>The transport sizes receives from its pool's block size, so it needs a bounded pool, as the forwarder's.</summary>
    public static readonly MemoryPool<byte> Blocks = new PinnedBlockMemoryPool(4096);

    public static readonly TcpConnectionFactory Tcp = new(new TcpTransportOptions(), Blocks);

    public static Http2HeaderList Head(string method, string path, IPEndPoint endPoint, params (string Name, string Value)[] fields)
    {
        var head = new Http2HeaderList();
        head.Add(":method"u8, Encoding.ASCII.GetBytes(method));
        head.Add(":scheme"u8, "http"u8);
        head.Add(":authority"u8, Encoding.ASCII.GetBytes(endPoint.ToString()));
        head.Add(":path"u8, Encoding.ASCII.GetBytes(path));
        foreach (var (name, value) in fields)
        {
            head.Add(Encoding.ASCII.GetBytes(name), Encoding.ASCII.GetBytes(value));
        }

        return head;
    }

    public static Http2HeaderList Fields(params (string Name, string Value)[] fields)
    {
        var list = new Http2HeaderList();
        foreach (var (name, value) in fields)
        {
            list.Add(Encoding.ASCII.GetBytes(name), Encoding.ASCII.GetBytes(value));
        }

        return list;
    }

    public static async Task<Http2ClientConnection> ConnectAsync(IPEndPoint endPoint, Http2ClientOptions? options = null)
    {
        var connection = new Http2ClientConnection(await Tcp.ConnectAsync(endPoint), options ?? new Http2ClientOptions());
        await connection.StartAsync(CancellationToken.None);
        return connection;
    }

    public static Http2ClientPool Pool(IPEndPoint endPoint, Http2ClientOptions? options = null)
        => new(Http2ClientDialer.Cleartext(Tcp, endPoint), options ?? new Http2ClientOptions());

    public static async Task<Http2TestResponse> ReadResponseAsync(Http2ClientStream stream)
    {
        await stream.ReadResponseHeadAsync();
        var body = new MemoryStream();
        while (true)
        {
            var result = await stream.ReadBodyAsync();
            foreach (var segment in result.Buffer)
            {
                body.Write(segment.Span);
            }

            stream.AdvanceBody(result.Buffer);
            if (result.IsCompleted)
            {
                break;
            }
        }

        return new Http2TestResponse(stream.Status, body.ToArray(), ToDictionary(stream.ResponseHeaders), ToDictionary(stream.ResponseTrailers));
    }

    /// <summary>A GET on its own stream, read to the end and released.</summary>
    public static async Task<Http2TestResponse> GetAsync(Http2ClientConnection connection, IPEndPoint endPoint, string path)
    {
        await using var stream = await connection.OpenStreamAsync(Head("GET", path, endPoint), endStream: true);
        return await ReadResponseAsync(stream);
    }

    public static async Task<Http2TestResponse> GetAsync(Http2ClientPool pool, IPEndPoint endPoint, string path)
    {
        await using var stream = await pool.OpenStreamAsync(Head("GET", path, endPoint), endStream: true);
        return await ReadResponseAsync(stream);
    }

    private static Dictionary<string, string> ToDictionary(Http2HeaderList fields)
    {
        var result = new Dictionary<string, string>();
        for (var i = 0; i < fields.Count; i++)
        {
            result[Encoding.ASCII.GetString(fields.Name(i))] = Encoding.ASCII.GetString(fields.Value(i));
        }

        return result;
    }
}
