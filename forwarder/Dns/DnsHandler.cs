namespace Forwarder.Dns;

/// <summary>
/// What UDP and TCP share: parse a query, answer it at once when the cluster model or the cache
/// can, else say it must go upstream.
/// </summary>
internal sealed class DnsHandler(ClusterZoneSource zones, DnsForwarding forwarding, DnsMetrics metrics, uint ttl)
{
    /// <summary>Names' offsets a response may point to; more names are written without compression.</summary>
    private const int CompressionTargets = 64;

    public DnsForwarding Forwarding => forwarding;

    /// <summary>
    /// Writes the answer to <paramref name="message"/> into <paramref name="response"/> when it needs
    /// no upstream; returns its length, 0 for no answer. <paramref name="forward"/> is set when
    /// <see cref="DnsForwarding.ResolveAsync"/> must answer it.
    /// </summary>
    /// <param name="limit">The most the transport takes (UDP: the client's EDNS size; TCP: 65535).</param>
    /// <param name="name">At least 255 bytes; receives the question name lower-cased.</param>
    public int Answer(ReadOnlySpan<byte> message, Span<byte> response, Span<byte> name, bool udp, out DnsQuery query, out bool forward)
    {
        forward = false;
        switch (DnsQuery.TryParse(message, name, out query))
        {
            case DnsQueryParse.Drop:
                metrics.Drop();
                return 0;
            case DnsQueryParse.FormErr:
                metrics.Answered(0, DnsResult.FormErr);
                return Error(query, response, DnsRcode.FormErr);
            case DnsQueryParse.NotImp:
                metrics.Answered(0, DnsResult.NotImp);
                return Error(query, response, DnsRcode.NotImp);
        }

        var limit = Math.Min(response.Length, udp ? query.UdpLimit : DnsHeader.MaxMessage);
        var lowerName = name[..query.NameLength];
        var zone = zones.Current;
        if (DnsName.IsAtOrBelow(lowerName, zone.Apex))
        {
            Span<ushort> targets = stackalloc ushort[CompressionTargets];
            var writer = new DnsWriter(response[..limit], targets);
            var result = ClusterAnswers.Write(ref writer, query, message.Slice(DnsHeader.Size, query.NameLength), lowerName, zone, ttl);
            metrics.Answered(query.Type, result);
            return writer.Position;
        }

        Span<byte> key = stackalloc byte[DnsName.MaxLength + 4];
        var keyLength = KeyInto(key, lowerName, query);
        var cached = forwarding.TryWriteCached(key[..keyLength], query, message, response, limit);
        if (cached > 0)
        {
            metrics.Answered(query.Type, DnsResult.Cached);
            return cached;
        }

        forward = true;
        return 0;
    }

    /// <summary>The cache key of the question just parsed into <paramref name="name"/>.</summary>
    public static byte[] Key(ReadOnlySpan<byte> name, in DnsQuery query) => DnsForwarding.Key(name[..query.NameLength], query.Type, query.Class);

    private static int KeyInto(Span<byte> key, ReadOnlySpan<byte> name, in DnsQuery query)
    {
        name.CopyTo(key);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(key[name.Length..], query.Type);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(key[(name.Length + 2)..], query.Class);
        return name.Length + 4;
    }

    /// <summary>A header-only error answer echoing the id (the question may be what was wrong).</summary>
    private static int Error(in DnsQuery query, Span<byte> response, int rcode)
    {
        var writer = new DnsWriter(response, []);
        writer.WriteHeader(query.Id, (ushort)(DnsHeader.Qr | (query.Flags & (DnsHeader.Rd | 0x7800))), rcode);
        return writer.Position;
    }
}
