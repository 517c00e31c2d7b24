using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Forwarder.Dns;
using Forwarder.Tests.Cluster;
using static Forwarder.Tests.Dns.DnsForwardingTests;
using static Forwarder.Tests.Dns.DnsTestKit;

namespace Forwarder.Tests.Dns;

/// <summary>Random and mutated messages: the codec never throws, the server answers FORMERR or nothing and keeps serving others.</summary>
public sealed class DnsFuzzTests
{
    private static readonly byte[][] Seeds =
    [
        RawQuery(1, "web.default.svc.cluster.local", 1),
        RawQuery(2, "_http._tcp.web.default.svc.cluster.local", 33),
        RawQuery(3, "www.example.org", 28),
        WithOpt(RawQuery(4, "cluster.local", 6)),
        // A response with compression pointers and an SOA, as upstreams send.
        [0, 5, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0, 2, (byte)'n', (byte)'x', 7, .. "example"u8, 0, 0, 1, 0, 1,
            0xC0, 15, 0, 6, 0, 1, 0, 0, 0, 60, 0, 24, 0xC0, 12, 0xC0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5],
    ];

    [Fact]
    public void Codec_TwentyThousandRandomAndMutatedMessages_NeverThrowNorOverrun()
    {
        var random = new Random(20261206);
        var name = new byte[DnsName.MaxLength];
        for (var i = 0; i < 20_000; i++)
        {
            var message = i % 4 == 0 ? RandomBytes(random) : Mutate(Seeds[random.Next(Seeds.Length)], random);
            if (DnsQuery.TryParse(message, name, out var query) == DnsQueryParse.Ok)
            {
                Assert.InRange(query.NameLength, 1, DnsName.MaxLength);
                Assert.InRange(query.UdpLimit, 512, 1232);
            }

            _ = UpstreamAnswer.TryCreate(message, 0);
            var offset = random.Next(message.Length + 1);
            if (DnsName.TryRead(message, ref offset, name, out var length))
            {
                Assert.InRange(length, 1, DnsName.MaxLength);
                Assert.InRange(offset, 1, message.Length);
            }
        }
    }

    [Fact]
    public void Name_PointerLoopsForwardPointersAndOverlongNames_Rejected()
    {
        var name = new byte[DnsName.MaxLength];
        byte[] selfLoop = [.. new byte[12], 0xC0, 12];
        byte[] twoLoop = [.. new byte[12], 1, (byte)'a', 0xC0, 12];
        byte[] forward = [.. new byte[12], 0xC0, 16, 0, 0, 0];
        byte[] longLabel = [.. new byte[12], 64, .. new byte[64], 0];
        byte[] longName = [.. new byte[12], .. Enumerable.Repeat<byte[]>([63, .. new byte[63]], 5).SelectMany(b => b), 0];
        foreach (var message in (byte[][])[selfLoop, twoLoop, forward, longLabel, longName])
        {
            var offset = 12;
            Assert.False(DnsName.TryRead(message, ref offset, name, out _));
        }
    }

    [Fact]
    public void Writer_CompressesRepeatedNames_NotSrvTargets()
    {
        var owner = FromText("web.default.svc.cluster.local");
        var buffer = new byte[512];
        var writer = new DnsWriter(buffer, new ushort[16]);
        writer.WriteHeader(1, DnsHeader.Qr, 0);
        writer.WriteQuestion(owner, 1, 1);
        var question = writer.Position;
        writer.WriteA(owner, 5, [10, 0, 0, 1]);
        writer.WriteA(owner, 5, [10, 0, 0, 2]);
        Assert.Equal(question + (2 * (2 + 10 + 4)), writer.Position);

        var srvStart = writer.Position;
        writer.WriteSrv(owner, 5, 80, owner);
        Assert.Equal(srvStart + 2 + 10 + 6 + owner.Length, writer.Position);
    }

    [Fact]
    public async Task Server_MalformedDatagramsAndStreams_FormErrOrNothing_OtherClientsKeepGettingAnswers()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, 8080, "TCP")));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();
        await EventuallyAsync(dns, "web.default.svc.cluster.local", "A", r => r.Answer.Count > 0, "discovery names the service");

        using var stop = new CancellationTokenSource();
        var bystander = BystanderAsync(dns, stop.Token);
        var formErrs = await FuzzUdpAsync(dns, 2000, new Random(7));
        await FuzzTcpAsync(dns, 200, new Random(8));
        await stop.CancelAsync();
        var served = await bystander;

        Assert.True(formErrs > 100, $"only {formErrs} FORMERR answers");
        Assert.True(served > 0, "the bystander got answers throughout");
        Assert.Equal([ClusterIp], (await Dig.QueryAsync(dns, "web.default.svc.cluster.local", "A")).Data("A"));
        Assert.Equal([ClusterIp], (await Dig.QueryAsync(dns, "web.default.svc.cluster.local", "A", "+tcp")).Data("A"));
        Assert.True(forwarder.Metrics.Dns.Queries(6, DnsResult.FormErr) > 0);
    }

    /// <summary>
    /// Sends each fuzz datagram (id = its index) then a probe (id 0x8000 + index) and waits for the
    /// probe's answer, so the server is shown alive after every one. Returns the FORMERR count.
    /// </summary>
    private static async Task<int> FuzzUdpAsync(IPEndPoint dns, int count, Random random)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(dns);
        var randomKind = new bool[count];
        var formErrs = 0;
        var buffer = new byte[2048];
        for (var i = 0; i < count; i++)
        {
            randomKind[i] = i % 2 == 0;
            var message = randomKind[i] ? RandomBytes(random) : Mutate(Seeds[random.Next(Seeds.Length)], random);
            if (message.Length >= 2)
            {
                BinaryPrimitives.WriteUInt16BigEndian(message, (ushort)i);
            }

            await socket.SendAsync(message);
            await socket.SendAsync(RawQuery((ushort)(0x8000 + i), "probe.default.svc.cluster.local", 1));
            while (true)
            {
                var length = await socket.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(30));
                var reply = buffer.AsSpan(0, length);
                Assert.True(length >= 12 && (reply[2] & 0x80) != 0, "every reply is a DNS response");
                Assert.True(UpstreamAnswer.TryCreate(reply, 0) is not null, $"malformed reply {Convert.ToHexString(reply)}");
                var id = BinaryPrimitives.ReadUInt16BigEndian(reply);
                if (id == 0x8000 + i)
                {
                    Assert.Equal(3, reply[3] & 0xF);
                    break;
                }

                var rcode = reply[3] & 0xF;
                formErrs += rcode == 1 ? 1 : 0;
                if (id < count && randomKind[id])
                {
                    Assert.True(rcode is 1 or 4, $"random bytes got rcode {rcode}");
                }
            }
        }

        return formErrs;
    }

    /// <summary>Connections sending garbage frames then closing: answered with well-formed responses or closed, never hung.</summary>
    private static async Task FuzzTcpAsync(IPEndPoint dns, int count, Random random)
    {
        for (var i = 0; i < count; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(dns);
            var frame = i % 2 == 0 ? RandomBytes(random) : Frame(Mutate(Seeds[random.Next(Seeds.Length)], random));
            await socket.SendAsync(frame);
            socket.Shutdown(SocketShutdown.Send);
            var received = new List<byte>();
            var buffer = new byte[4096];
            try
            {
                int read;
                while ((read = await socket.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(30))) > 0)
                {
                    received.AddRange(buffer.AsSpan(0, read));
                }
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Closed with garbage unread: the kernel resets rather than ends the stream.
            }

            for (var offset = 0; offset + 2 <= received.Count;)
            {
                var length = (received[offset] << 8) | received[offset + 1];
                if (offset + 2 + length > received.Count)
                {
                    // A reset may cut the last reply short.
                    break;
                }

                var reply = received.GetRange(offset + 2, length).ToArray();
                Assert.True((reply[2] & 0x80) != 0 && UpstreamAnswer.TryCreate(reply, 0) is not null, "a well-formed response");
                offset += 2 + length;
            }
        }
    }

    /// <summary>
    /// Sends query <paramref name="id"/> and returns the length of its answer, asking again each
    /// second as a resolver does: the fuzzing floods the loopback, and a datagram either way may be
    /// dropped with a full socket buffer. A late answer to an earlier query is skipped.
    /// </summary>
    private static async Task<int> AskAsync(Socket socket, ushort id, byte[] buffer)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        Task<int>? pending = null;
        while (true)
        {
            await socket.SendAsync(RawQuery(id, "web.default.svc.cluster.local", 1));
            using var resend = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            while (!resend.IsCancellationRequested)
            {
                // One receive at a time: one given up on would take the next datagram.
                pending ??= socket.ReceiveAsync(buffer.AsMemory()).AsTask();
                if (await Task.WhenAny(pending, Task.Delay(Timeout.Infinite, resend.Token)) != pending)
                {
                    break;
                }

                var length = await pending;
                pending = null;
                if (length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(buffer) == id)
                {
                    return length;
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"query {id} went unanswered for 30 s, asked every second");
            }
        }
    }

    /// <summary>Asks for the service every few milliseconds while the fuzzing goes on; every answer must be right.</summary>
    private static async Task<int> BystanderAsync(IPEndPoint dns, CancellationToken stop)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(dns);
        var buffer = new byte[1500];
        var served = 0;
        for (ushort id = 1; !stop.IsCancellationRequested; id++)
        {
            var length = await AskAsync(socket, id, buffer);
            Assert.Equal(id, BinaryPrimitives.ReadUInt16BigEndian(buffer));
            Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(6)));
            Assert.Equal(IPAddress.Parse(ClusterIp).GetAddressBytes(), buffer[(length - 4)..length]);
            served++;
            await Task.Delay(5, CancellationToken.None);
        }

        return served;
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 600)];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A seed with a few bytes flipped, cut short, grown, or given a pointer.</summary>
    private static byte[] Mutate(byte[] seed, Random random)
    {
        var bytes = seed.ToList();
        for (var n = random.Next(1, 4); n > 0 && bytes.Count > 0; n--)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0: bytes[at] = (byte)random.Next(256); break;
                case 1: bytes.RemoveRange(at, bytes.Count - at); break;
                case 2: bytes.Insert(at, (byte)random.Next(256)); break;
                case 3: bytes[at] = (byte)(0xC0 | random.Next(64)); break;
                default: bytes[at] ^= (byte)(1 << random.Next(8)); break;
            }
        }

        return [.. bytes];
    }

    private static byte[] Frame(byte[] message) => [(byte)(message.Length >> 8), (byte)message.Length, .. message];

    private static byte[] WithOpt(byte[] query)
    {
        byte[] withOpt = [.. query, 0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0];
        withOpt[11] = 1;
        return withOpt;
    }

    private static byte[] FromText(string name) => DnsName.FromText(name);
}
