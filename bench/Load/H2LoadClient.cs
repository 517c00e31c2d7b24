using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>
/// An h2c (HTTP/2 with prior knowledge) client on a raw socket with one request in flight, as
/// <see cref="HttpLoadClient"/> is for HTTP/1.1: each exchange is a GET on the connection's next
/// stream, read to END_STREAM. The connection opens with the preface, SETTINGS (no dynamic HPACK
/// table, no push, the largest stream window) and a WINDOW_UPDATE to the largest connection window,
/// which is topped up as responses use it; it acknowledges the server's SETTINGS and PINGs, and
/// ends the connection after a GOAWAY. A request the GOAWAY says was not processed (its stream is
/// above the last one) goes again once on a new connection, as any HTTP/2 client retries it, and
/// its latency includes that connect. The request is encoded once and nothing is allocated per request.
/// </summary>
internal sealed class H2LoadClient : SocketLoadClient
{
    /// <summary>Connection window used before it is topped up: far below 2^31 so the window never runs dry.</summary>
    private const int WindowTopUp = 1 << 30;

    private static readonly byte[] ConnectionStart = BuildConnectionStart();

    private readonly byte[] _request;
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(4 * (H2c.FrameHeaderLength + H2c.MaxFrameLength), pinned: true);
    private readonly byte[] _outgoing = GC.AllocateUninitializedArray<byte>(1024, pinned: true);
    private Socket? _started;
    private int _streamId;
    private int _start;
    private int _end;
    private int _outgoingLength;
    private long _consumed;

    // The exchange in progress.
    private int _status;
    private long _received;
    private bool _statusPending;
    private bool _endStreamPending;
    private bool _closeAfter;
    private bool _refused;
    private string? _failure;

    public H2LoadClient(Uri url)
        : base(HttpLoadClient.ToEndPoint(url))
    {
        // :method GET (2) and :scheme http (6) are whole static entries, so is :path / (4); the
        // rest are literals without indexing on static names: :path (4), :authority (1), user-agent (58).
        List<byte> block = [0x82, 0x86];
        if (url.PathAndQuery == "/")
        {
            block.Add(0x84);
        }
        else
        {
            Literal(block, 4, url.PathAndQuery);
        }

        Literal(block, 1, url.Authority);
        Literal(block, 58, "forwarder-bench");
        _request = new byte[H2c.FrameHeaderLength + block.Count];
        H2c.WriteFrameHeader(_request, block.Count, H2c.Headers, H2c.EndStream | H2c.EndHeaders, 0);
        block.CopyTo(_request, H2c.FrameHeaderLength);
    }

    private enum Progress
    {
        NeedBytes,
        Flush,
        Done,
        Failed,
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<Response> ExchangeAsync()
    {
        try
        {
            var retried = false;
        Start:
            var socket = await Connection.ConnectedAsync().ConfigureAwait(false);
            if (!ReferenceEquals(socket, _started))
            {
                _started = socket;
                _streamId = 1;
                _start = _end = _outgoingLength = 0;
                _consumed = 0;
                await socket.SendAsync(ConnectionStart, SocketFlags.None).ConfigureAwait(false);
            }
            else
            {
                _streamId += 2;
            }

            BinaryPrimitives.WriteInt32BigEndian(_request.AsSpan(5), _streamId);
            _status = 0;
            _received = 0;
            _statusPending = _endStreamPending = _closeAfter = _refused = false;
            _failure = null;
            await socket.SendAsync(_request, SocketFlags.None).ConfigureAwait(false);
            while (true)
            {
                var progress = ReadFrames();
                if (_outgoingLength > 0)
                {
                    await socket.SendAsync(_outgoing.AsMemory(0, _outgoingLength), SocketFlags.None).ConfigureAwait(false);
                    _outgoingLength = 0;
                }

                switch (progress)
                {
                    case Progress.Done:
                        // Stream ids run out at 2^31: the next exchange starts a new connection.
                        if (_closeAfter || _streamId > int.MaxValue - 2)
                        {
                            Close();
                        }

                        return HttpLoadClient.Outcome(_status, _received);
                    case Progress.Failed when _refused && !retried:
                        Close();
                        retried = true;
                        goto Start;
                    case Progress.Failed:
                        Close();
                        return Response.Fail(_failure!, _status == 0 ? null : _status, _received);
                    case Progress.NeedBytes:
                        if (_start > 0)
                        {
                            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                            _end -= _start;
                            _start = 0;
                        }

                        var read = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None).ConfigureAwait(false);
                        if (read == 0)
                        {
                            Close();
                            return Response.Fail("connection closed before the response ended", _status == 0 ? null : _status, _received);
                        }

                        _end += read;
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            _started = null;
            return Connection.Fail(ex);
        }
    }

    /// <summary>Handles the whole frames buffered, queueing acknowledgements and window updates in <see cref="_outgoing"/>.</summary>
    private Progress ReadFrames()
    {
        while (_end - _start >= H2c.FrameHeaderLength)
        {
            // Room for the largest control frame this answers with (a PING ACK), else send first.
            if (_outgoing.Length - _outgoingLength < H2c.FrameHeaderLength + 8)
            {
                return Progress.Flush;
            }

            var (length, type, flags, streamId) = H2c.ReadFrameHeader(_buffer.AsSpan(_start));
            if (length > H2c.MaxFrameLength)
            {
                return Fail("frame larger than SETTINGS_MAX_FRAME_SIZE");
            }

            if (_end - _start < H2c.FrameHeaderLength + length)
            {
                return Progress.NeedBytes;
            }

            var payload = _buffer.AsSpan(_start + H2c.FrameHeaderLength, length);
            _start += H2c.FrameHeaderLength + length;
            _received += H2c.FrameHeaderLength + length;
            var ours = streamId == _streamId;
            switch (type)
            {
                case H2c.Data:
                    _consumed += length;
                    if (_consumed >= WindowTopUp)
                    {
                        _outgoingLength += H2c.WriteUInt32Frame(_outgoing.AsSpan(_outgoingLength), H2c.WindowUpdate, 0, (uint)_consumed);
                        _consumed = 0;
                    }

                    if (ours && (flags & H2c.EndStream) != 0)
                    {
                        return _status == 0 ? Fail("DATA before the response's HEADERS") : Progress.Done;
                    }

                    break;
                case H2c.Headers or H2c.Continuation when ours:
                    if (type == H2c.Headers)
                    {
                        if (!H2c.TryUnpad(payload, type, flags, out var fragment))
                        {
                            return Fail("malformed HEADERS frame");
                        }

                        // A final status is read once; trailers (a later HEADERS) carry none.
                        if (_status is 0 or (>= 100 and < 200))
                        {
                            _status = H2StatusReader.Read(fragment);
                            _statusPending = _status == 0;
                        }

                        _endStreamPending = (flags & H2c.EndStream) != 0;
                    }
                    else if (_statusPending)
                    {
                        _status = H2StatusReader.Read(payload);
                        _statusPending = _status == 0;
                    }

                    if ((flags & H2c.EndHeaders) != 0)
                    {
                        if (_statusPending)
                        {
                            return Fail("response without a :status this client reads");
                        }

                        if (_status is >= 100 and < 200)
                        {
                            // Informational: the final response follows in its own HEADERS.
                            break;
                        }

                        if (_endStreamPending)
                        {
                            return Progress.Done;
                        }
                    }

                    break;
                case H2c.RstStream when ours:
                    return Fail("stream reset by the server");
                case H2c.Settings when (flags & H2c.Ack) == 0:
                    H2c.WriteFrameHeader(_outgoing.AsSpan(_outgoingLength), 0, H2c.Settings, H2c.Ack, 0);
                    _outgoingLength += H2c.FrameHeaderLength;
                    break;
                case H2c.Ping when (flags & H2c.Ack) == 0 && length == 8:
                    H2c.WriteFrameHeader(_outgoing.AsSpan(_outgoingLength), 8, H2c.Ping, H2c.Ack, 0);
                    payload.CopyTo(_outgoing.AsSpan(_outgoingLength + H2c.FrameHeaderLength));
                    _outgoingLength += H2c.FrameHeaderLength + 8;
                    break;
                case H2c.GoAway when length >= 8:
                    // Streams above the last one the server processed were not: this one failed.
                    if (_streamId > (BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue))
                    {
                        _refused = true;
                        return Fail("GOAWAY before the request was processed");
                    }

                    _closeAfter = true;
                    break;
                case H2c.PushPromise:
                    return Fail("PUSH_PROMISE though push is disabled");
            }
        }

        return Progress.NeedBytes;
    }

    private Progress Fail(string message)
    {
        _failure = message;
        return Progress.Failed;
    }

    private void Close()
    {
        _started = null;
        Connection.Close();
    }

    private static void Literal(List<byte> block, int nameIndex, string value)
    {
        var bytes = Encoding.ASCII.GetBytes(value);
        H2c.WriteInteger(block, 0x00, 4, nameIndex);
        H2c.WriteInteger(block, 0x00, 7, bytes.Length);
        block.AddRange(bytes);
    }

    private static byte[] BuildConnectionStart()
    {
        var settings = H2c.SettingsFrame((H2c.SettingHeaderTableSize, 0u), (H2c.SettingEnablePush, 0u), (H2c.SettingInitialWindowSize, (uint)H2c.MaxWindow));
        var window = new byte[H2c.FrameHeaderLength + 4];
        H2c.WriteUInt32Frame(window, H2c.WindowUpdate, 0, H2c.MaxWindow - H2c.DefaultWindow);
        return [.. H2c.ClientPreface, .. settings, .. window];
    }
}
