using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace Forwarder.Dns;

/// <summary>
/// Answers names outside the cluster domain: from the cache while the TTL lasts, else from the
/// upstream resolvers, with one upstream query for any number of identical questions in flight.
/// </summary>
internal sealed class DnsForwarding(UpstreamResolvers resolvers, DnsCache cache, DnsMetrics metrics, TimeProvider time)
{
    private const int KeyExtra = 4;

    private readonly ConcurrentDictionary<byte[], Task<UpstreamAnswer?>> _inflight = new(WireNameComparer.Instance);

    /// <summary>The cache key of a question: its lower-cased wire name, type and class.</summary>
    public static byte[] Key(ReadOnlySpan<byte> name, ushort type, ushort @class)
    {
        var key = new byte[name.Length + KeyExtra];
        name.CopyTo(key);
        BinaryPrimitives.WriteUInt16BigEndian(key.AsSpan(name.Length), type);
        BinaryPrimitives.WriteUInt16BigEndian(key.AsSpan(name.Length + 2), @class);
        return key;
    }

    /// <summary>A cached answer written into <paramref name="destination"/>; 0 when the cache has none.</summary>
    public int TryWriteCached(ReadOnlySpan<byte> key, in DnsQuery query, ReadOnlySpan<byte> message, Span<byte> destination, int limit)
    {
        if (cache.Get(key) is not { } answer)
        {
            metrics.CacheMiss();
            return 0;
        }

        metrics.CacheHit();
        return Write(answer, query, message, destination, limit);
    }

    /// <summary>Asks upstream (or waits for the same question already asked) and writes the answer, or SERVFAIL.</summary>
    public async Task<(int Length, DnsResult Result)> ResolveAsync(byte[] key, DnsQuery query, ReadOnlyMemory<byte> message, Memory<byte> destination, int limit, CancellationToken cancellationToken)
    {
        var mine = new TaskCompletionSource<UpstreamAnswer?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var shared = _inflight.GetOrAdd(key, mine.Task);
        if (shared == mine.Task)
        {
            try
            {
                var answer = await resolvers.ResolveAsync(key[..^KeyExtra], query.Type, query.Class, cancellationToken).ConfigureAwait(false);
                if (answer is not null)
                {
                    cache.Add(key, answer);
                }

                mine.SetResult(answer);
            }
            catch (Exception ex)
            {
                mine.SetException(ex);
            }
            finally
            {
                _inflight.TryRemove(new KeyValuePair<byte[], Task<UpstreamAnswer?>>(key, mine.Task));
            }
        }
        else
        {
            metrics.Coalesce();
        }

        var result = await shared.WaitAsync(cancellationToken).ConfigureAwait(false);
        return result is null
            ? (ServFail(query, message.Span, destination.Span), DnsResult.ServFail)
            : (Write(result, query, message.Span, destination.Span, limit), DnsResult.Forwarded);
    }

    /// <summary>
    /// The answer with the client's id and question bytes (its case: some resolvers randomize it),
    /// TTLs less the time it was kept, an OPT record when the client used EDNS, and only the header
    /// and question with TC when it exceeds <paramref name="limit"/>.
    /// </summary>
    private int Write(UpstreamAnswer answer, in DnsQuery query, ReadOnlySpan<byte> message, Span<byte> destination, int limit)
    {
        var stored = answer.Message;
        var opt = query.Edns ? 11 : 0;
        var questionEnd = DnsHeader.Size + query.NameLength + 4;
        if (stored.Length + opt > limit || stored.Length < questionEnd)
        {
            message[..questionEnd].CopyTo(destination);
            DnsHeader.SetFlags(destination, (ushort)((DnsHeader.Flags(stored) & ~DnsHeader.Aa) | DnsHeader.Tc));
            DnsHeader.SetCount(destination, 3, 0);
            return AppendOpt(query, destination, questionEnd);
        }

        stored.CopyTo(destination);
        message[..2].CopyTo(destination);
        message[DnsHeader.Size..(DnsHeader.Size + query.NameLength)].CopyTo(destination[DnsHeader.Size..]);
        var elapsed = (uint)Math.Min(uint.MaxValue, time.GetElapsedTime(answer.StoredAt).TotalSeconds);
        foreach (var offset in answer.TtlOffsets)
        {
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(stored.AsSpan(offset));
            BinaryPrimitives.WriteUInt32BigEndian(destination[offset..], ttl > elapsed ? ttl - elapsed : 0);
        }

        return AppendOpt(query, destination, stored.Length);
    }

    private static int ServFail(in DnsQuery query, ReadOnlySpan<byte> message, Span<byte> destination)
    {
        var questionEnd = DnsHeader.Size + query.NameLength + 4;
        message[..questionEnd].CopyTo(destination);
        DnsHeader.SetFlags(destination, (ushort)(DnsHeader.Qr | DnsHeader.Ra | (query.Flags & DnsHeader.Rd) | DnsRcode.ServFail));
        DnsHeader.SetCount(destination, 3, 0);
        return AppendOpt(query, destination, questionEnd);
    }

    private static int AppendOpt(in DnsQuery query, Span<byte> destination, int length)
    {
        if (!query.Edns)
        {
            return length;
        }

        var writer = new DnsWriter(destination[length..], []);
        writer.WriteOpt();
        DnsHeader.SetCount(destination, 3, DnsHeader.Count(destination, 3) + 1);
        return length + writer.Position;
    }
}
