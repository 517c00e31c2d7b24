using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Tests.Infrastructure;

/// <summary>A request as an <see cref="HttpTestBackend"/> received it: the head verbatim, the body de-chunked.</summary>
internal sealed record ReceivedRequest(string Head, byte[] Body, int Connection)
{
    public string RequestLine => Head[..Head.IndexOf("\r\n", StringComparison.Ordinal)];

    /// <summary>The value of the first header named <paramref name="name"/> (case-insensitive), or null.</summary>
    public string? Header(string name) => SocketReader.HeaderOf(Head, name);
}

/// <summary>
/// A small real HTTP/1.1 server for proxy tests: reads requests off keep-alive connections
/// (Content-Length and chunked bodies), records them, and answers what the test's responder
/// says, byte for byte, so tests can also send broken or hostile responses.
/// </summary>
internal sealed class HttpTestBackend : IAsyncDisposable
{
    private readonly TcpTestServer _server;
    private readonly ConcurrentQueue<ReceivedRequest> _requests = new();
    private int _connections;

    /// <param name="respond">
    /// Given the request and the socket, writes the response itself; returns false to close the
    /// connection afterwards.
    /// </param>
    /// <param name="address">Where to listen; loopback when null.</param>
    public HttpTestBackend(Func<ReceivedRequest, Socket, Task<bool>> respond, System.Net.IPAddress? address = null)
    {
        _server = new TcpTestServer(socket => ServeAsync(socket, respond), address: address);
    }

    public string Address => _server.Address;

    public int AcceptedCount => _server.AcceptedCount;

    public IReadOnlyList<ReceivedRequest> Requests => [.. _requests];

    /// <summary>Answers every request 200 with <paramref name="body"/> and keeps the connection.</summary>
    public static HttpTestBackend Text(string body, string extraHeaders = "", System.Net.IPAddress? address = null)
        => new(
            async (_, socket) =>
            {
                await SendAsync(socket, Response(200, body, extraHeaders));
                return true;
            },
            address);

    public static string Response(int status, string body, string extraHeaders = "")
        => $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Status")}\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n{extraHeaders}\r\n{body}";

    public static Task SendAsync(Socket socket, string text) => socket.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None);

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private async Task ServeAsync(Socket socket, Func<ReceivedRequest, Socket, Task<bool>> respond)
    {
        var connection = Interlocked.Increment(ref _connections);
        var reader = new SocketReader(socket);
        while (true)
        {
            var head = await reader.ReadHeadAsync();
            if (head is null)
            {
                return;
            }

            if (new ReceivedRequest(head, [], 0).Header("expect") == "100-continue")
            {
                await SendAsync(socket, "HTTP/1.1 100 Continue\r\n\r\n");
            }

            var body = await reader.ReadBodyAsync(head);
            if (body is null)
            {
                return;
            }

            var request = new ReceivedRequest(head, body, connection);
            _requests.Enqueue(request);
            if (!await respond(request, socket))
            {
                socket.Shutdown(SocketShutdown.Both);
                return;
            }
        }
    }
}
