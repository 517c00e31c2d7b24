using System.Buffers;
using Forwarder.L7.Http1;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Server;

namespace Forwarder.L7.Http2.Proxy;

/// <summary>
/// The scratch space of one forwarded stream: the request described as an HTTP/1.1 head (for
/// routing and hash keys), the upstream's request head and trailers, the response's head and
/// trailers for the client, and what the request body pump saw. Pooled per connection, so a
/// request allocates none of it once the buffers have grown.
/// </summary>
internal sealed class Http2ProxyExchange
{
    private byte[] _text = new byte[1024];

    public Http1RequestHead Head { get; } = new();

    public Http2HeaderList Upstream { get; } = new();

    public Http2HeaderList RequestTrailers { get; } = new();

    public Http2HeaderFields Response { get; } = new();

    public Http2HeaderFields ResponseTrailers { get; } = new();

    /// <summary>Where joined values (X-Forwarded-For, Via) are built.</summary>
    public ArrayBufferWriter<byte> Joined { get; private set; } = new(256);

    public HashSet<int> Tried { get; } = [];

    /// <summary>The request id sent upstream when the client gave none (<see cref="RequestIdLength"/> bytes).</summary>
    public byte[] RequestId { get; } = new byte[24];

    public int RequestIdLength { get; set; }

    /// <summary>Whether the response head went to the client: past it, a failure can only reset the stream.</summary>
    public bool HeadSent { get; set; }

    // What the request body pump saw, for the attempt under way.
    public long BodyBytes { get; set; }

    public bool BodyStarted { get; set; }

    public bool BodyDone { get; set; }

    public bool BodyTooLarge { get; set; }

    /// <summary>The body's length is not the content-length the client declared (RFC 9113 8.1.1): the client's fault.</summary>
    public bool BodyMismatch { get; set; }

    public bool ClientGone { get; set; }

    public bool WaitingOnClient { get; set; }

    /// <summary>A buffer of at least <paramref name="length"/> bytes for the described head.</summary>
    public byte[] Text(int length)
    {
        if (_text.Length < length)
        {
            _text = new byte[Math.Max(length, _text.Length * 2)];
        }

        return _text;
    }

    public void StartAttempt()
    {
        BodyBytes = 0;
        BodyDone = BodyTooLarge = BodyMismatch = ClientGone = WaitingOnClient = false;

        // A retried bodiless request with trailers gathers them again: once, not twice.
        RequestTrailers.Clear();
    }

    public void Reset()
    {
        StartAttempt();
        BodyStarted = HeadSent = false;
        Tried.Clear();

        // Pooled for the connection's life: a huge (or HPACK-amplified) exchange's buffers are dropped, not kept.
        Upstream.Recycle();
        RequestTrailers.Recycle();
        Response.Recycle();
        ResponseTrailers.Recycle();
        Joined.ResetWrittenCount();
        if (Joined.Capacity > Http2HeaderFields.RetainedBytes)
        {
            Joined = new ArrayBufferWriter<byte>(256);
        }

        if (_text.Length > Http2HeaderFields.RetainedBytes)
        {
            _text = new byte[1024];
        }
    }
}
