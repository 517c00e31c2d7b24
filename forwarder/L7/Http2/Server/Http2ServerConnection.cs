using System.Buffers;
using System.IO.Pipelines;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Forwarder.Runtime;

namespace Forwarder.L7.Http2.Server;

/// <summary>
/// The server side of one HTTP/2 connection (RFC 9113) over a duplex pipe: an accepted socket's
/// (on the epoll engine, its reads wake this connection inline), a TLS stream's, or a test's.
/// One loop reads and applies frames; each request stream, once its header block is whole and
/// valid, goes to an <see cref="IHttp2StreamHandler"/>; one writer sends what streams and the
/// reader queue, many frames per flush (<see cref="Http2ServerConnection"/>'s Output part).
/// </summary>
/// <remarks>
/// Stream state, windows and queued output are shared by the reader, the writer and handlers,
/// all under <see cref="_lock"/>; no handler code runs while it is held, except cancellation
/// callbacks registered on <see cref="Http2ServerStream.Aborted"/>.
/// </remarks>
internal sealed partial class Http2ServerConnection
{
    private const int RecentResets = 64;

    /// <summary>Pooled streams kept once the connection is idle and no burst needed more for <see cref="Http2ServerOptions.StreamPoolExpiry"/>.</summary>
    private const int IdlePoolSize = 4;

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IHttp2StreamHandler _handler;
    private readonly Http2ServerOptions _options;
    private readonly ConnectionTracker _clock;
    private readonly Http2FloodLimits _floods;
    private readonly Http2FrameReader _frames;
    private readonly int _maxHeaderBlockSize;
    private readonly HpackDecoder _decoder;
    private readonly HpackEncoder _encoder = new(maxTableSize: 0);
    private readonly Http2FieldTarget _target = new();
    private readonly Http2RequestHeaderValidator<Http2FieldTarget> _validator;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly Stack<Http2ServerStream> _pool = new();
    private readonly int[] _recentResets = new int[RecentResets];
    private int _recentResetNext;
    private Http2ReceiveWindow _connectionReceive;
    private Http2SendWindow _connectionSend = new(Http2Frames.DefaultWindowSize);
    private int _peerInitialWindow = Http2Frames.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frames.DefaultMaxFrameSize;
    private int _lastStreamId;
    private long _poolNeededAt;
    private bool _firstBlockDone;

    public Http2ServerConnection(IDuplexPipe transport, IHttp2StreamHandler handler, Http2ServerOptions options, ConnectionTracker clock)
    {
        _input = transport.Input;
        _output = transport.Output;
        if (options.InitialStreamWindowSize < Http2Frames.DefaultWindowSize || options.ConnectionWindowSize < Http2Frames.DefaultWindowSize)
        {
            // A client sends on the default window until it has our SETTINGS (RFC 9113 6.9.2): a smaller one would be broken by every client that does.
            throw new ArgumentException($"HTTP/2 receive windows must be at least {Http2Frames.DefaultWindowSize} bytes", nameof(options));
        }

        _handler = handler;
        _options = options;
        _clock = clock;
        _floods = new Http2FloodLimits(clock);
        _frames = new Http2FrameReader { MaxFrameSize = options.MaxFrameSize };

        // A header list the SETTINGS allow must fit on the wire (literals, and a frame header
        // per frame): a larger list is answered 431, never made a connection error.
        _maxHeaderBlockSize = Math.Max(options.MaxHeaderBlockSize, options.MaxHeaderListSize + Http2Frames.DefaultMaxFrameSize);
        _decoder = new HpackDecoder(options.HeaderTableSize, options.MaxHeaderListSize);
        _validator = new Http2RequestHeaderValidator<Http2FieldTarget>(_target);
        _connectionReceive = new Http2ReceiveWindow(options.ConnectionWindowSize);
        _timer = clock.CreateTimer(static state => ((Http2ServerConnection)state!).OnTimer(), this);
    }

    /// <summary>The error code of the GOAWAY this side sent; null while it sent none.</summary>
    public Http2ErrorCode? GoAwayCode { get; private set; }

    /// <summary>Serves the connection until either side ends it; never throws for what the peer does.</summary>
    public async Task RunAsync()
    {
        var writing = WriteLoopAsync();
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Http2ConnectionException e)
        {
            GoAway(e.Code, e.Message);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionResetException or InvalidOperationException)
        {
            // The transport ended under the reader: nothing more can be said to the peer.
        }
        finally
        {
            Close();
        }

        await writing.ConfigureAwait(false);
        _timer.Dispose();
        await _input.CompleteAsync().ConfigureAwait(false);
        await _output.CompleteAsync().ConfigureAwait(false);
        _block = ReturnBlock(_block);
    }

    internal int PooledStreams
    {
        get
        {
            lock (_lock)
            {
                return _pool.Count;
            }
        }
    }

    /// <summary>The bytes queued for the writer in the control queue, not yet in the transport.</summary>
    internal int QueuedControlBytes
    {
        get
        {
            lock (_lock)
            {
                return _control.WrittenCount;
            }
        }
    }

    /// <summary>The memory the control queue holds on to.</summary>
    internal int ControlCapacity
    {
        get
        {
            lock (_lock)
            {
                return _control.Capacity;
            }
        }
    }

    /// <summary>The reader waits for the client to take its backlogged output.</summary>
    internal bool ReaderPaused
    {
        get
        {
            lock (_lock)
            {
                return _controlDrained is not null;
            }
        }
    }

    /// <summary>The header bytes the connection's pooled streams hold on to.</summary>
    internal long PooledHeaderBytes
    {
        get
        {
            lock (_lock)
            {
                return _pool.Sum(static s => (long)s.RequestHeaders.Capacity + s.RequestTrailers.Capacity);
            }
        }
    }

    /// <summary>Graceful close (RFC 9113 6.8): GOAWAY NO_ERROR naming the last stream taken; those finish, then the connection closes.</summary>
    public void Shutdown() => GoAway(Http2ErrorCode.NoError, null);

    private static byte[] ReturnBlock(byte[] block)
    {
        if (block.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(block);
        }

        return [];
    }
}
