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
    private readonly Lock _timeoutLock = new();

    /// <summary>Where the attempt waits for the end of the client's read that opened it (<see cref="WaitForBody"/>).</summary>
    private readonly Http2StreamSignal _readEnded = new();
    private CancellationTokenSource _timeout = new();
    private CancellationTokenRegistration _clientAborted;
    private int _timeoutGeneration;
    private bool _expired;

    /// <summary>When the attempt's route timeout passes (a tracker timestamp); 0: none.</summary>
    private long _deadline;

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

    /// <summary>Whether the route's timeout cancelled the attempt (not the client's reset).</summary>
    public bool TimedOut { get; private set; }

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

    /// <summary>
    /// An attempt begins: the token it waits with is cancelled when the client resets its stream
    /// or when the connection tracker's tick finds <paramref name="deadline"/> passed
    /// (<see cref="CheckDeadline"/>), without a linked source and a timer of its own.
    /// </summary>
    public CancellationToken ArmTimeout(CancellationToken clientAborted, long deadline)
    {
        lock (_timeoutLock)
        {
            _timeoutGeneration++;
            TimedOut = false;
            if (_expired || !_timeout.TryReset())
            {
                // Not disposed: Expire may still be cancelling it, and without a timer it holds nothing.
                _timeout = new CancellationTokenSource();
                _expired = false;
            }

            _clientAborted = clientAborted.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), _timeout);
            Volatile.Write(ref _deadline, deadline);
            return _timeout.Token;
        }
    }

    /// <summary>The response head came: the deadline no longer applies (a client's reset still cancels).</summary>
    public void StopTimeout()
    {
        // No lock: a tick that read the deadline before this queues an Expire that finds the generation moved on.
        Volatile.Write(ref _deadline, 0);
        Interlocked.Increment(ref _timeoutGeneration);
    }

    /// <summary>The attempt is over (its upstream stream released): nothing cancels its token any more.</summary>
    public void DisarmTimeout()
    {
        StopTimeout();

        // Waits out a client's reset cancelling now: the source is reset only once nothing else cancels it.
        _clientAborted.Dispose();
        _clientAborted = default;
    }

    /// <summary>
    /// On the tracker's tick: a deadline passed cancels the attempt's token, from the thread pool
    /// (the cancellation runs the request's code, which must not stall the tick's other checks).
    /// </summary>
    public void CheckDeadline(long now)
    {
        var deadline = Volatile.Read(ref _deadline);
        if (deadline == 0 || now < deadline)
        {
            return;
        }

        int generation;
        lock (_timeoutLock)
        {
            if (_deadline != deadline)
            {
                // The attempt ended or got its head meanwhile.
                return;
            }

            _deadline = 0;
            generation = _timeoutGeneration;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static state => state.Exchange.Expire(state.Generation), (Exchange: this, Generation: generation), preferLocal: false);
    }

    private void Expire(int generation)
    {
        CancellationTokenSource timeout;
        lock (_timeoutLock)
        {
            // An attempt that ended (or got its head) meanwhile is not cancelled for its deadline.
            if (generation != _timeoutGeneration)
            {
                return;
            }

            TimedOut = true;
            timeout = _timeout;
            _expired = true;
        }

        // Outside the lock (the cancellation runs the request's code); the source is never reset
        // for another attempt (_expired), so a late cancel reaches only the attempt it was for.
        timeout.Cancel();
    }

    /// <summary>Waits until <see cref="ReleaseBody"/>; the continuation runs inline there, on the reader.</summary>
    public ValueTask WaitForBody() => _readEnded.Arm();

    /// <summary>The client's read is applied: whatever body it held is in the stream's pipe now.</summary>
    public void ReleaseBody() => _readEnded.Set();

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
        Head.Trim(Http2HeaderFields.RetainedBytes);
        Joined.ResetWrittenCount();
        if (Joined.Capacity > Http2HeaderFields.RetainedBytes)
        {
            Joined = new ArrayBufferWriter<byte>(256);
        }
    }
}
