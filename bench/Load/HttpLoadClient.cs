using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>
/// An HTTP/1.1 keep-alive client on a raw socket, one request in flight, made to cost the load
/// generator as little as possible: the request is encoded once, responses are framed without
/// being parsed further, and nothing is allocated per request. With <paramref name="close"/> each
/// request asks for <c>Connection: close</c> and the connection is dropped after its response, so
/// every request pays for a connection set-up (what a proxy does per connection is measured).
/// </summary>
internal sealed class HttpLoadClient(Uri url, bool close = false) : SocketLoadClient(ToEndPoint(url))
{
    private readonly byte[] _request = Encoding.ASCII.GetBytes($"GET {url.PathAndQuery} HTTP/1.1\r\nHost: {url.Authority}\r\nUser-Agent: forwarder-bench\r\n{(close ? "Connection: close\r\n" : string.Empty)}\r\n");
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
    private readonly HttpResponseReader _reader = new();

    public static EndPoint ToEndPoint(Uri url)
    {
        if (url.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException($"Only http:// URLs are supported, got '{url}'.", nameof(url));
        }

        return IPAddress.TryParse(url.IdnHost, out var address) ? new IPEndPoint(address, url.Port) : new DnsEndPoint(url.IdnHost, url.Port);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<Response> ExchangeAsync()
    {
        try
        {
            var socket = await Connection.ConnectedAsync().ConfigureAwait(false);
            await socket.SendAsync(_request, SocketFlags.None).ConfigureAwait(false);
            _reader.Reset();
            long received = 0;
            while (true)
            {
                var read = await socket.ReceiveAsync(_buffer, SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    Connection.Close();
                    return _reader.ReadsUntilClose ? Outcome(received) : Response.Fail("connection closed before the response ended", _reader.Status == 0 ? null : _reader.Status, received);
                }

                received += read;
                switch (_reader.Read(_buffer.AsSpan(0, read), out var consumed))
                {
                    case ResponseProgress.Complete when consumed != read:
                        Connection.Close();
                        return Response.Fail("bytes after the response", _reader.Status, received);
                    case ResponseProgress.Complete:
                        if (close || _reader.CloseAfter)
                        {
                            Connection.Close();
                        }

                        return Outcome(received);
                    case ResponseProgress.Malformed:
                        Connection.Close();
                        return Response.Fail("malformed response", null, received);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            return Connection.Fail(ex);
        }
    }


    private Response Outcome(long received) => Outcome(_reader.Status, received);

    /// <summary>Like wrk, a response outside 2xx and 3xx counts as an error.</summary>
    public static Response Outcome(int status, long received)
        => status is >= 200 and < 400
            ? Response.Ok(status, received)
            : Response.Fail(StatusMessage(status), status, received);

    private static string StatusMessage(int status) => status switch
    {
        >= 500 => "status 5xx",
        >= 400 => "status 4xx",
        _ => "status 1xx",
    };
}
