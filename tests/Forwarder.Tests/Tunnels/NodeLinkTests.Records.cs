using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Features;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <content>How a link's data frames fall into TLS records, seen on the wire between the nodes.</content>
public sealed partial class NodeLinkTests
{
    /// <summary>A TLS 1.3 record carrying 16 KiB of plaintext with AES-GCM: the plaintext, its content type byte, the 16-byte tag.</summary>
    private const int FullRecord = (16 * 1024) + 1 + 16;

    [Fact]
    public async Task FullDataFrames_WithTheirHeaders_AreWholeTlsRecords_WithNoSmallRecordBetween()
    {
        const int Frames = 16;
        var data = new byte[Frames * NodeCredentials.LinkMux.MaxFrameData];
        Random.Shared.NextBytes(data);
        var received = new StrongBox<long>();
        await using var sink = CountingSink(received);
        // No pings either way while it counts: a ping, or the answer to one, is a small record too.
        await using var nodeB = await StartNodeBAsync(sink.Address, keepAlive: "1h");
        var tap = new RecordTap();
        await using var tapServer = new TcpTestServer(socket => tap.RelayAsync(socket, LinkEndPoint(nodeB)));
        using var credentials = Credentials("edge-a");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var link = await LinkDialer.DialAsync(Tcp(), tapServer.EndPoint, credentials, "edge-b", NodeCredentials.LinkProtocol, LinkDialer.Options(TimeSpan.Zero, MemoryPool<byte>.Shared), timeout.Token);
        await using var connection = link.Connection;
        await using var session = link.Session;
        var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.Connect, string.Empty, sink.Address), timeout.Token);
        Assert.Equal(TunnelStatus.Connected, status);
        await using (stream!)
        {
            var (full, small) = tap.Counts;
            await stream!.Features.Get<IDirectSendFeature>()!.SendAsync(new ReadOnlySequence<byte>(data)).AsTask().WaitAsync(timeout.Token);
            await Eventually.TrueAsync(() => Interlocked.Read(ref received.Value) == data.Length, "every byte reached the endpoint behind node B");

            // 64 KiB - 12 of data and a 12-byte header are four full records; 64 KiB of data made a fifth, small one, every frame.
            Assert.Equal((full + (Frames * 4), small), tap.Counts);
        }
    }

    [Fact]
    public async Task ABulkUpload_ReadIn64KiB_IsFramedWithNoTinyFrameBetween()
    {
        const int Size = 16 * 1024 * 1024;
        var received = new StrongBox<long>();
        await using var sink = CountingSink(received);
        await using var nodeB = await StartNodeBAsync(sink.Address, keepAlive: "1h");
        var tap = new RecordTap();
        await using var tapServer = new TcpTestServer(socket => tap.RelayAsync(socket, LinkEndPoint(nodeB)));
        // No pings from A either: a loaded machine stretches the upload past A's default interval, and each ping is a tiny record.
        await using var nodeA = await StartNodeAAsync($"127.0.0.1:{tapServer.EndPoint.Port}", sink.Address, keepAlive: "1h");

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await client.SendAsync(new byte[1], SocketFlags.None);
        await Eventually.TrueAsync(() => Interlocked.Read(ref received.Value) == 1, "the first byte went through the link");
        var tinyBefore = tap.Tiny;

        // One send of 16 MiB: node A finds 64 KiB and more waiting at nearly every read.
        await client.SendAsync(new byte[Size], SocketFlags.None);
        await Eventually.TrueAsync(() => Interlocked.Read(ref received.Value) == Size + 1, "every byte reached the endpoint behind node B");

        // Reads of 64 KiB cut into frames of 64 KiB - 12 left a 12-byte frame (a record of its own) per read: hundreds here.
        Assert.InRange(tap.Tiny - tinyBefore, 0, 2);
    }

    /// <summary>A TCP relay between a dialling node and the node it dials, counting the dialler's TLS records by size.</summary>
    private sealed class RecordTap
    {
        private int _full;
        private int _small;
        private int _tiny;

        public (int Full, int Small) Counts => (Volatile.Read(ref _full), Volatile.Read(ref _small));

        /// <summary>Records of at most 64 bytes of plaintext: a lone frame header, or a frame of a few bytes.</summary>
        public int Tiny => Volatile.Read(ref _tiny);

        public async Task RelayAsync(Socket dialler, IPEndPoint target)
        {
            using var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await upstream.ConnectAsync(target);
            var back = CopyAsync(upstream, dialler);
            await CountAsync(dialler, upstream);

            // The dialler is gone: close node B's side too. The test server may dispose the
            // dialler's socket before the FIN is relayed, and B, its pings off, would then see
            // nothing: no FIN, so no reason to close.
            upstream.Close();
            await back;
        }

        private static async Task CopyAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (await from.ReceiveAsync(buffer, SocketFlags.None) is > 0 and var read)
                {
                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Either end went away, or the tap closed node B's side: the test is over.
            }
        }

        /// <summary>Copies, reading each record's 5-byte header (type, version, 16-bit length) as it passes.</summary>
        private async Task CountAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            var header = new byte[5];
            var (inHeader, bodyLeft) = (0, 0);
            try
            {
                while (await from.ReceiveAsync(buffer, SocketFlags.None) is > 0 and var read)
                {
                    for (var i = 0; i < read;)
                    {
                        if (bodyLeft > 0)
                        {
                            var skip = Math.Min(bodyLeft, read - i);
                            (bodyLeft, i) = (bodyLeft - skip, i + skip);
                            continue;
                        }

                        header[inHeader++] = buffer[i++];
                        if (inHeader == header.Length)
                        {
                            bodyLeft = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(3));
                            Interlocked.Increment(ref bodyLeft == FullRecord ? ref _full : ref _small);
                            if (bodyLeft <= 64 + 1 + 16)
                            {
                                Interlocked.Increment(ref _tiny);
                            }
                            inHeader = 0;
                        }
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // Either end went away: the test is over.
            }
        }
    }

    /// <summary>An endpoint that reads everything sent to it and counts the bytes in <paramref name="received"/>.</summary>
    private static TcpTestServer CountingSink(StrongBox<long> received) => new(async socket =>
    {
        var buffer = new byte[64 * 1024];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None) is > 0 and var read)
        {
            Interlocked.Add(ref received.Value, read);
        }
    });
}
