using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Tests.Dns;

/// <summary>
/// An upstream resolver for the tests on loopback UDP and TCP, encoding by hand (not with the
/// codec under test). Any NAME. gets A 192.0.<see cref="LastOctet"/>.N (N per name) with <see cref="Ttl"/>; names
/// starting with "nx" get NXDOMAIN with an SOA whose minimum is <see cref="NegativeTtl"/>; "big"
/// names get 60 A records (more than 512 bytes). It counts the queries per name.
/// </summary>
internal sealed class TestUpstreamDns : IAsyncDisposable
{
    private readonly Socket _udp;
    private readonly Socket _tcp;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, int> _queries = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<Task> _loops = [];
    private int _tcpQueries;

    public TestUpstreamDns(byte lastOctet = 1)
    {
        LastOctet = lastOctet;

        // A port free for both UDP and TCP.
        for (var attempt = 1; ; attempt++)
        {
            _udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            _tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                _udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                _tcp.Bind(_udp.LocalEndPoint!);
                break;
            }
            catch (SocketException) when (attempt < 20)
            {
                _udp.Dispose();
                _tcp.Dispose();
            }
        }

        EndPoint = (IPEndPoint)_udp.LocalEndPoint!;
        _tcp.Listen(16);
        _loops.Add(UdpLoopAsync());
        _loops.Add(TcpLoopAsync());
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>The third octet of its answers (192.0.LASTOCTET.N), telling upstreams apart.</summary>
    public byte LastOctet { get; }

    public uint Ttl { get; set; } = 300;

    public uint NegativeTtl { get; set; } = 60;

    /// <summary>Answers nothing at all (a dead resolver).</summary>
    public bool Silent { get; set; }

    /// <summary>Over UDP, answers with TC and no records, so the full answer must come over TCP.</summary>
    public bool TruncateUdp { get; set; }

    /// <summary>When set, answers wait for it (queries are still counted on arrival).</summary>
    public TaskCompletionSource? Gate { get; set; }

    public int TcpQueries => Volatile.Read(ref _tcpQueries);

    public int Queries(string name) => _queries.GetValueOrDefault(name.TrimEnd('.'));

    public int TotalQueries => _queries.Values.Sum();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _udp.Dispose();
        _tcp.Dispose();
        await Task.WhenAll(_loops).ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    private async Task UdpLoopAsync()
    {
        var buffer = new byte[4096];
        var from = new SocketAddress(AddressFamily.InterNetwork);
        while (!_stop.IsCancellationRequested)
        {
            int length;
            try
            {
                length = await _udp.ReceiveFromAsync(buffer, SocketFlags.None, from, _stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            var query = buffer[..length];
            var client = new SocketAddress(from.Family, from.Size);
            from.Buffer.CopyTo(client.Buffer);
            _ = AnswerUdpAsync(query, client);
        }
    }

    private async Task AnswerUdpAsync(byte[] query, SocketAddress client)
    {
        if (await AnswerAsync(query, udp: true) is { } answer)
        {
            try
            {
                await _udp.SendToAsync(answer, SocketFlags.None, client);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private async Task TcpLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _tcp.AcceptAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            using (socket)
            {
                try
                {
                    var prefix = new byte[2];
                    await socket.ReceiveAsync(prefix, SocketFlags.None, _stop.Token);
                    var query = new byte[BinaryPrimitives.ReadUInt16BigEndian(prefix)];
                    for (var read = 0; read < query.Length;)
                    {
                        read += await socket.ReceiveAsync(query.AsMemory(read), SocketFlags.None, _stop.Token);
                    }

                    Interlocked.Increment(ref _tcpQueries);
                    if (await AnswerAsync(query, udp: false) is { } answer)
                    {
                        var framed = new byte[answer.Length + 2];
                        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)answer.Length);
                        answer.CopyTo(framed, 2);
                        await socket.SendAsync(framed, SocketFlags.None, _stop.Token);
                    }
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (SocketException)
                {
                }
            }
        }
    }

    private async Task<byte[]?> AnswerAsync(byte[] query, bool udp)
    {
        // The question: uncompressed name, type, class.
        var end = 12;
        var labels = new List<string>();
        while (query[end] != 0)
        {
            labels.Add(Encoding.ASCII.GetString(query, end + 1, query[end]));
            end += 1 + query[end];
        }

        end += 5;
        var name = string.Join('.', labels);
        _queries.AddOrUpdate(name, 1, (_, n) => n + 1);
        if (Silent)
        {
            return null;
        }

        if (Gate is { } gate)
        {
            await gate.Task;
        }

        var nx = name.StartsWith("nx", StringComparison.OrdinalIgnoreCase);
        var count = name.StartsWith("big", StringComparison.OrdinalIgnoreCase) ? 60 : 1;
        var truncate = udp && TruncateUdp;
        var answer = new List<byte>(query[..end]);
        answer[2] = 0x81;
        answer[3] = (byte)(0x80 | (nx ? 3 : 0));
        answer[11] = 0;
        if (truncate)
        {
            answer[2] |= 0x02;
        }
        else if (nx)
        {
            answer[9] = 1;
            answer.AddRange([0xC0, 12, 0, 6, 0, 1, .. U32(Ttl), 0, 0]);
            List<byte> data = [0, 0, .. U32(1), .. U32(7200), .. U32(900), .. U32(86400), .. U32(NegativeTtl)];
            answer[^2] = (byte)(data.Count >> 8);
            answer[^1] = (byte)data.Count;
            answer.AddRange(data);
        }
        else
        {
            answer[7] = (byte)count;
            var n = (byte)((uint)name.ToLowerInvariant().GetHashCode() % 200 + 1);
            for (var i = 0; i < count; i++)
            {
                answer.AddRange([0xC0, 12, 0, 1, 0, 1, .. U32(Ttl), 0, 4, 192, 0, LastOctet, (byte)(count == 1 ? n : i + 1)]);
            }
        }

        return [.. answer];
    }

    private static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }
}
