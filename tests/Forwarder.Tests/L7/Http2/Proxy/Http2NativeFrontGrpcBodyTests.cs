using System.Security.Cryptography;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// A unary gRPC call's request body reaches the upstream whole however it arrives at the native
/// front: in the same read as its HEADERS (the usual unary call), or later, in two DATA frames
/// sent only once the upstream's response head is back (so the upstream stream was long open).
/// </summary>
public sealed class Http2NativeFrontGrpcBodyTests
{
    /// <summary>
    /// argv[2]: "together" or "later". The message is one gRPC frame of 1,000 bytes. Prints
    /// "status N data LENGTH SHA256 grpc-status S" once the stream ends, or "reset CODE".
    /// </summary>
    private const string Client = """
mode = sys.argv[2]
payload = bytes(i % 251 for i in range(1000))
message = b"\x00" + len(payload).to_bytes(4, "big") + payload
headers = [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port), (":path", "/echo.Echo/Call"), ("content-type", "application/grpc"), ("te", "trailers")]
c.send_headers(1, headers)
if mode == "together":
    c.send_data(1, message, end_stream=True)
s.sendall(c.data_to_send())
status, body, trailers = None, b"", {}
while True:
    data = s.recv(65536)
    if not data:
        print("closed"); break
    done = False
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            status = dict(e.headers)[b":status"].decode()
            if mode == "later":
                # The upstream answered its head before reading: the body now comes in reads of its own.
                s.sendall(c.data_to_send())
                c.send_data(1, message[:400])
                s.sendall(c.data_to_send())
                c.send_data(1, message[400:], end_stream=True)
        elif isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            body += e.data
        elif isinstance(e, h2.events.TrailersReceived):
            trailers = dict(e.headers)
        elif isinstance(e, h2.events.StreamEnded):
            done = True
        elif isinstance(e, h2.events.StreamReset):
            print("reset %d" % e.error_code); sys.exit(0)
    s.sendall(c.data_to_send())
    if done:
        print("status %s data %d %s grpc-status %s" % (status, len(body), hashlib.sha256(body).hexdigest(), trailers.get(b"grpc-status", b"-").decode())); break
""";

    [Theory]
    [InlineData("together")]
    [InlineData("later")]
    public async Task UnaryCall_ItsBodyArrivesWhole_InTheHeadersReadOrLater(string mode)
    {
        var received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            // The head first, before the body is read: the "later" client waits for it to send its body.
            context.Response.ContentType = "application/grpc";
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.TrySetResult(body.ToArray());
            await context.Response.Body.WriteAsync(body.ToArray());
            context.Response.AppendTrailer("grpc-status", "0");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: grpc", Http2Service("grpc", backend.Port), "http2: native"));

        var output = await PythonH2Client.OutputAsync(forwarder.EndPoint("web"), Client, [mode]);

        var payload = Enumerable.Range(0, 1000).Select(i => (byte)(i % 251)).ToArray();
        byte[] message = [0, 0, 0, 3, 232, .. payload];
        Assert.Equal(message, await received.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal($"status 200 data 1005 {Convert.ToHexStringLower(SHA256.HashData(message))} grpc-status 0", output);
    }
}
