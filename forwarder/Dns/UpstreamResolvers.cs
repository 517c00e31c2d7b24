using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Forwarder.Dns;

/// <summary>
/// Asks the upstream resolvers one after another, starting with the one that answered last:
/// over UDP from a fresh socket (a random source port per query), again over TCP when the answer
/// is truncated, and on to the next upstream after a timeout, an error, SERVFAIL or REFUSED.
/// </summary>
internal sealed class UpstreamResolvers(IReadOnlyList<IPEndPoint> upstreams, TimeSpan timeout, DnsMetrics metrics, TimeProvider time)
{
    private int _preferred;

    public IReadOnlyList<IPEndPoint> Upstreams => upstreams;

    /// <summary>The first good answer; null when every upstream failed.</summary>
    /// <param name="name">The question name in wire form.</param>
    public async Task<UpstreamAnswer?> ResolveAsync(byte[] name, ushort type, ushort @class, CancellationToken cancellationToken)
    {
        var query = Query(name, type, @class, out var id);
        var first = Volatile.Read(ref _preferred);
        for (var i = 0; i < upstreams.Count; i++)
        {
            var index = (first + i) % upstreams.Count;
            var upstream = upstreams[index];
            var upstreamMetrics = metrics.Upstream(upstream.ToString());
            var started = time.GetTimestamp();
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(timeout);
                var response = await UdpAsync(upstream, query, id, deadline.Token).ConfigureAwait(false);
                if ((DnsHeader.Flags(response) & DnsHeader.Tc) != 0)
                {
                    upstreamMetrics.RetriedOverTcp();
                    response = await TcpAsync(upstream, query, id, deadline.Token).ConfigureAwait(false);
                }

                if (DnsHeader.Rcode(response) is not (DnsRcode.ServFail or DnsRcode.Refused)
                    && UpstreamAnswer.TryCreate(response, time.GetTimestamp()) is { } answer)
                {
                    upstreamMetrics.Latency.Record(time.GetElapsedTime(started));
                    Volatile.Write(ref _preferred, index);
                    return answer;
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
            {
                // Timed out, refused or reset: the next upstream is asked.
            }

            upstreamMetrics.Failed();
        }

        return null;
    }

    private static byte[] Query(byte[] name, ushort type, ushort @class, out ushort id)
    {
        id = (ushort)Random.Shared.Next(ushort.MaxValue + 1);
        var query = new byte[DnsHeader.Size + name.Length + 4 + 11];
        DnsHeader.SetId(query, id);
        DnsHeader.SetFlags(query, DnsHeader.Rd);
        DnsHeader.SetCount(query, 0, 1);
        DnsHeader.SetCount(query, 3, 1);
        name.CopyTo(query, DnsHeader.Size);
        var offset = DnsHeader.Size + name.Length;
        BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(offset), type);
        BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(offset + 2), @class);

        // EDNS, so answers up to 1232 bytes come over UDP.
        BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(offset + 5), DnsType.Opt);
        BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(offset + 7), DnsHeader.EdnsUdpSize);
        return query;
    }

    private static async Task<byte[]> UdpAsync(IPEndPoint upstream, byte[] query, ushort id, CancellationToken cancellationToken)
    {
        using var socket = new Socket(upstream.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(upstream, cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(query, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var buffer = new byte[DnsHeader.EdnsUdpSize * 4];
        while (true)
        {
            var length = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);

            // Anything but the answer to this query (a late one, a forgery) is ignored.
            if (Matches(buffer.AsSpan(0, length), query, id))
            {
                return buffer[..length];
            }
        }
    }

    private static async Task<byte[]> TcpAsync(IPEndPoint upstream, byte[] query, ushort id, CancellationToken cancellationToken)
    {
        using var socket = new Socket(upstream.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(upstream, cancellationToken).ConfigureAwait(false);
        var framed = new byte[2 + query.Length];
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Length);
        query.CopyTo(framed, 2);
        await socket.SendAsync(framed, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var prefix = new byte[2];
        await ReceiveExactlyAsync(socket, prefix, cancellationToken).ConfigureAwait(false);
        var response = new byte[BinaryPrimitives.ReadUInt16BigEndian(prefix)];
        await ReceiveExactlyAsync(socket, response, cancellationToken).ConfigureAwait(false);
        return Matches(response, query, id) ? response : throw new IOException("the upstream answered another question over TCP");
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("the upstream closed the connection mid-answer");
            }

            buffer = buffer[read..];
        }
    }

    /// <summary>A response with our id and our question (name compared case-insensitively).</summary>
    private static bool Matches(ReadOnlySpan<byte> response, ReadOnlySpan<byte> query, ushort id)
    {
        var questionLength = query.Length - DnsHeader.Size - 11;
        return response.Length >= DnsHeader.Size + questionLength
            && DnsHeader.Id(response) == id
            && (DnsHeader.Flags(response) & DnsHeader.Qr) != 0
            && DnsHeader.Count(response, 0) == 1
            && System.Text.Ascii.EqualsIgnoreCase(response.Slice(DnsHeader.Size, questionLength), query.Slice(DnsHeader.Size, questionLength));
    }
}
