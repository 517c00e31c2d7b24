using System.Buffers.Binary;

namespace Forwarder.Dns;

/// <summary>
/// An upstream resolver's answer as the server keeps it: without its OPT record (EDNS is per hop),
/// with the offsets of every TTL so a cached copy is served with the time it spent taken off.
/// </summary>
internal sealed class UpstreamAnswer
{
    private UpstreamAnswer(byte[] message, int[] ttlOffsets, TimeSpan ttl, long storedAt)
    {
        Message = message;
        TtlOffsets = ttlOffsets;
        Ttl = ttl;
        StoredAt = storedAt;
    }

    public byte[] Message { get; }

    public int[] TtlOffsets { get; }

    /// <summary>How long it may be cached: the least answer TTL, or for NXDOMAIN/NODATA the SOA's (RFC 2308); zero for not at all.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>When it arrived (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long StoredAt { get; }

    /// <summary>Checks the whole message and reads its TTLs; null when malformed.</summary>
    public static UpstreamAnswer? TryCreate(ReadOnlySpan<byte> response, long now)
    {
        if (response.Length < DnsHeader.Size)
        {
            return null;
        }

        var offset = DnsHeader.Size;
        for (var i = DnsHeader.Count(response, 0); i > 0; i--)
        {
            if (!DnsName.TrySkip(response, ref offset) || (offset += 4) > response.Length)
            {
                return null;
            }
        }

        List<int> ttlOffsets = [];
        uint? answerTtl = null;
        uint? negativeTtl = null;
        int optStart = -1, optEnd = -1;
        for (var section = 1; section <= 3; section++)
        {
            for (var i = DnsHeader.Count(response, section); i > 0; i--)
            {
                var start = offset;
                if (!DnsRecords.TrySkip(response, ref offset, out var type, out _, out var ttlOffset))
                {
                    return null;
                }

                if (type == DnsType.Opt)
                {
                    (optStart, optEnd) = (start, offset);
                    continue;
                }

                var ttl = BinaryPrimitives.ReadUInt32BigEndian(response[ttlOffset..]);
                ttlOffsets.Add(ttlOffset);
                if (section == 1)
                {
                    answerTtl = Math.Min(answerTtl ?? uint.MaxValue, ttl);
                }
                else if (section == 2 && type == DnsType.Soa && offset - start >= 14)
                {
                    negativeTtl = Math.Min(ttl, BinaryPrimitives.ReadUInt32BigEndian(response[(offset - 4)..]));
                }
            }
        }

        if (offset != response.Length)
        {
            return null;
        }

        var rcode = DnsHeader.Rcode(response);
        var cacheable = (DnsHeader.Flags(response) & DnsHeader.Tc) == 0 && rcode is DnsRcode.NoError or DnsRcode.NxDomain;
        var seconds = !cacheable ? 0 : rcode == DnsRcode.NoError && answerTtl is { } positive ? positive : negativeTtl ?? 0;
        var ttlSpan = TimeSpan.FromSeconds(Math.Min(seconds, MaxTtlSeconds));

        // The OPT record goes; when it is not the last record the rest would move, so then the message stays whole.
        var message = optEnd == response.Length ? response[..optStart].ToArray() : response.ToArray();
        if (optEnd == response.Length)
        {
            DnsHeader.SetCount(message, 3, DnsHeader.Count(message, 3) - 1);
        }

        return new UpstreamAnswer(message, [.. ttlOffsets.Where(o => o < message.Length)], ttlSpan, now);
    }

    /// <summary>Answers are kept a day at most, whatever the upstream says.</summary>
    public const uint MaxTtlSeconds = 86400;
}
