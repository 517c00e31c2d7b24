using System.Net;
using System.Net.Sockets;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Backends;

/// <summary>
/// A built-in h2c backend (HTTP/2 with prior knowledge): answers every request stream, once its
/// request has ended, with 200, <c>content-type: text/plain</c> and the 13-byte body of
/// <see cref="HelloHttpServer"/>, encoded with HPACK static-table indices only, so it never needs
/// the request's headers decoded. All responses to what one read brought in go out in one write,
/// so multiplexed clients (h2load -m, a proxy's shared connection) are served as they send.
/// Request bodies are discarded and their window given back. Flow control of the responses is
/// not kept: each is 13 bytes, within the smallest window any client opens with in practice.
/// </summary>
internal sealed class H2cHelloServer(IPEndPoint endpoint) : BackendServer(endpoint)
{
    // HEADERS (END_HEADERS): :status 200 (static 8), content-length "13" and content-type "text/plain"
    // as literals without indexing on static names 28 and 31. DATA (END_STREAM): the body.
    private static readonly byte[] ResponseBlock = [0x88, 0x0F, 0x0D, 2, (byte)'1', (byte)'3', 0x0F, 0x10, 10, .. "text/plain"u8];
    private static readonly byte[] Body = "Hello, World!"u8.ToArray();
    private static readonly byte[] ServerSettings = H2c.SettingsFrame();
    private static readonly int ResponseLength = (2 * H2c.FrameHeaderLength) + ResponseBlock.Length + Body.Length;

    private long _requests;

    public long Requests => Interlocked.Read(ref _requests);

    protected override async Task ServeAsync(Socket client)
    {
        var buffer = new byte[4 * (H2c.FrameHeaderLength + H2c.MaxFrameLength)];
        var output = new byte[64 * 1024];
        var connection = new ConnectionState();
        await client.SendAsync(ServerSettings, SocketFlags.None, Stopping.Token).ConfigureAwait(false);
        var held = 0;
        while (true)
        {
            var read = await client.ReceiveAsync(buffer.AsMemory(held), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
            if (read == 0)
            {
                return;
            }

            held += read;
            var consumed = 0;
            var written = 0;
            var go = true;
            while (go)
            {
                var (step, used, wrote) = connection.Read(buffer.AsSpan(consumed, held - consumed), output.AsSpan(written));
                consumed += used;
                written += wrote;
                switch (step)
                {
                    case Step.OutputFull:
                        await client.SendAsync(output.AsMemory(0, written), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
                        written = 0;
                        break;
                    case Step.Close:
                        if (written > 0)
                        {
                            await client.SendAsync(output.AsMemory(0, written), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
                        }

                        return;
                    default:
                        go = false;
                        break;
                }
            }

            Interlocked.Add(ref _requests, connection.TakeAnswered());
            if (written > 0)
            {
                await client.SendAsync(output.AsMemory(0, written), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
            }

            buffer.AsSpan(consumed, held - consumed).CopyTo(buffer);
            held -= consumed;
        }
    }

    private enum Step
    {
        NeedBytes,
        OutputFull,
        Close,
    }

    /// <summary>One connection's protocol state, fed what the socket brings in; writes its answers to the output given.</summary>
    private sealed class ConnectionState
    {
        private bool _prefaceRead;
        private int _headersStream;
        private bool _headersEndStream;
        private int _answered;

        /// <summary>Streams whose request is still sending its body.</summary>
        private readonly HashSet<int> _open = [];

        public int TakeAnswered()
        {
            var answered = _answered;
            _answered = 0;
            return answered;
        }

        /// <returns>Why it stopped, the input bytes used and the output bytes written.</returns>
        public (Step Step, int Used, int Wrote) Read(ReadOnlySpan<byte> input, Span<byte> output)
        {
            var used = 0;
            var wrote = 0;
            if (!_prefaceRead)
            {
                var length = Math.Min(input.Length, H2c.ClientPreface.Length);
                if (!input[..length].SequenceEqual(H2c.ClientPreface[..length]))
                {
                    return (Step.Close, 0, 0);
                }

                if (length < H2c.ClientPreface.Length)
                {
                    return (Step.NeedBytes, 0, 0);
                }

                _prefaceRead = true;
                used = length;
            }

            while (input.Length - used >= H2c.FrameHeaderLength)
            {
                // Room for the largest answer to one frame: a response, or the two WINDOW_UPDATEs for a DATA frame.
                if (output.Length - wrote < ResponseLength)
                {
                    return (Step.OutputFull, used, wrote);
                }

                var (length, type, flags, streamId) = H2c.ReadFrameHeader(input[used..]);
                if (length > H2c.MaxFrameLength)
                {
                    return (Step.Close, used, wrote);
                }

                if (input.Length - used < H2c.FrameHeaderLength + length)
                {
                    break;
                }

                var payload = input.Slice(used + H2c.FrameHeaderLength, length);
                used += H2c.FrameHeaderLength + length;
                switch (type)
                {
                    case H2c.Headers when streamId != 0:
                        _headersStream = streamId;
                        _headersEndStream = (flags & H2c.EndStream) != 0;
                        wrote += EndOfHeaders(flags, output[wrote..]);
                        break;
                    case H2c.Continuation when streamId == _headersStream:
                        wrote += EndOfHeaders(flags, output[wrote..]);
                        break;
                    case H2c.Data when streamId != 0:
                        if (length > 0)
                        {
                            // The request body is discarded: its window goes straight back.
                            wrote += H2c.WriteUInt32Frame(output[wrote..], H2c.WindowUpdate, 0, (uint)length);
                            if ((flags & H2c.EndStream) == 0)
                            {
                                wrote += H2c.WriteUInt32Frame(output[wrote..], H2c.WindowUpdate, streamId, (uint)length);
                            }
                        }

                        if ((flags & H2c.EndStream) != 0 && _open.Remove(streamId))
                        {
                            wrote += Respond(streamId, output[wrote..]);
                        }

                        break;
                    case H2c.RstStream:
                        _open.Remove(streamId);
                        break;
                    case H2c.Settings when (flags & H2c.Ack) == 0:
                        H2c.WriteFrameHeader(output[wrote..], 0, H2c.Settings, H2c.Ack, 0);
                        wrote += H2c.FrameHeaderLength;
                        break;
                    case H2c.Ping when (flags & H2c.Ack) == 0 && length == 8:
                        H2c.WriteFrameHeader(output[wrote..], 8, H2c.Ping, H2c.Ack, 0);
                        payload.CopyTo(output[(wrote + H2c.FrameHeaderLength)..]);
                        wrote += H2c.FrameHeaderLength + 8;
                        break;
                    case H2c.GoAway:
                        return (Step.Close, used, wrote);
                }
            }

            return (Step.NeedBytes, used, wrote);
        }

        /// <summary>When the header block is whole: the response if the request has ended, else the stream waits for its body.</summary>
        private int EndOfHeaders(byte flags, Span<byte> output)
        {
            if ((flags & H2c.EndHeaders) == 0)
            {
                return 0;
            }

            if (_headersEndStream)
            {
                // A request without a body, or the trailers that end one.
                _open.Remove(_headersStream);
                return Respond(_headersStream, output);
            }

            _open.Add(_headersStream);
            return 0;
        }

        private int Respond(int streamId, Span<byte> output)
        {
            _answered++;
            H2c.WriteFrameHeader(output, ResponseBlock.Length, H2c.Headers, H2c.EndHeaders, streamId);
            ResponseBlock.CopyTo(output[H2c.FrameHeaderLength..]);
            var data = output[(H2c.FrameHeaderLength + ResponseBlock.Length)..];
            H2c.WriteFrameHeader(data, Body.Length, H2c.Data, H2c.EndStream, streamId);
            Body.CopyTo(data[H2c.FrameHeaderLength..]);
            return ResponseLength;
        }
    }
}
