namespace Forwarder.Dns;

/// <summary>Writes the authoritative answer for a name in the cluster domain, from the zone alone: no allocation.</summary>
internal static class ClusterAnswers
{
    private const int Answer = 1;
    private const int Authority = 2;
    private const int Additional = 3;

    /// <param name="question">The question name as the client sent it (its case is echoed).</param>
    /// <param name="name">The same name lower-cased: the lookup key.</param>
    public static DnsResult Write(ref DnsWriter writer, in DnsQuery query, ReadOnlySpan<byte> question, ReadOnlySpan<byte> name, ClusterZone zone, uint ttl)
    {
        var flags = (ushort)(DnsHeader.Qr | DnsHeader.Aa | DnsHeader.Ra | (query.Flags & DnsHeader.Rd));
        if (query.Edns)
        {
            writer.Reserve(11);
        }

        writer.WriteHeader(query.Id, flags, DnsRcode.NoError);
        if (!writer.WriteQuestion(question, query.Type, query.Class))
        {
            return Finish(ref writer, query, DnsResult.FormErr);
        }

        if (query.Class is not (DnsHeader.ClassIn or DnsType.Any))
        {
            writer.SetCount(0, 1);
            return Finish(ref writer, query, DnsResult.Refused);
        }

        writer.SetCount(0, 1);
        if (!zone.TryFind(name, out var node))
        {
            WriteSoa(ref writer, zone, ttl);
            return Finish(ref writer, query, DnsResult.NxDomain);
        }

        var answers = 0;
        var truncated = false;
        var type = query.Type;
        if (type is DnsType.A or DnsType.Aaaa or DnsType.Any)
        {
            foreach (var address in node.Addresses)
            {
                if (type == DnsType.Any || (address.Length == 4) == (type == DnsType.A))
                {
                    truncated |= !Count(writer.WriteA(question, ttl, address), ref answers);
                }
            }
        }

        if (!truncated && type is DnsType.Srv or DnsType.Any)
        {
            foreach (var srv in node.Srv)
            {
                truncated |= !Count(writer.WriteSrv(question, ttl, srv.Port, srv.Target), ref answers);
            }
        }

        if (!truncated && type is DnsType.Soa or DnsType.Any && name.SequenceEqual(zone.Apex))
        {
            truncated |= !Count(writer.WriteSoa(zone.Apex, zone.Primary, zone.Mailbox, ttl, zone.Serial, ttl), ref answers);
        }

        writer.SetCount(Answer, answers);
        if (truncated)
        {
            writer.AddFlags(DnsHeader.Tc);
            return Finish(ref writer, query, DnsResult.Answer);
        }

        if (answers == 0)
        {
            WriteSoa(ref writer, zone, ttl);
            return Finish(ref writer, query, DnsResult.NoData);
        }

        if (type == DnsType.Srv)
        {
            WriteTargets(ref writer, node, zone, ttl);
        }

        return Finish(ref writer, query, DnsResult.Answer);
    }

    /// <summary>The SOA in the authority section, its minimum the negative-caching TTL (RFC 2308).</summary>
    private static void WriteSoa(ref DnsWriter writer, ClusterZone zone, uint ttl)
    {
        var written = writer.WriteSoa(zone.Apex, zone.Primary, zone.Mailbox, ttl, zone.Serial, ttl);
        writer.SetCount(Authority, written ? 1 : 0);
    }

    /// <summary>The SRV targets' addresses as additional records, as many as fit (they are a courtesy; no TC for them).</summary>
    private static void WriteTargets(ref DnsWriter writer, ZoneNode node, ClusterZone zone, uint ttl)
    {
        var additional = 0;
        for (var i = 0; i < node.Srv.Count; i++)
        {
            var target = node.Srv[i].Target;
            if (IndexOfTarget(node, target) != i || !zone.TryFind(target, out var targetNode))
            {
                continue;
            }

            foreach (var address in targetNode.Addresses)
            {
                if (!writer.WriteA(target, ttl, address))
                {
                    writer.SetCount(Additional, additional);
                    return;
                }

                additional++;
            }
        }

        writer.SetCount(Additional, additional);
    }

    private static int IndexOfTarget(ZoneNode node, byte[] target)
    {
        for (var i = 0; i < node.Srv.Count; i++)
        {
            if (ReferenceEquals(node.Srv[i].Target, target) || node.Srv[i].Target.AsSpan().SequenceEqual(target))
            {
                return i;
            }
        }

        return -1;
    }

    private static bool Count(bool written, ref int count)
    {
        if (written)
        {
            count++;
        }

        return written;
    }

    private static DnsResult Finish(ref DnsWriter writer, in DnsQuery query, DnsResult result)
    {
        var rcode = result switch
        {
            DnsResult.NxDomain => DnsRcode.NxDomain,
            DnsResult.Refused => DnsRcode.Refused,
            DnsResult.FormErr => DnsRcode.FormErr,
            _ => DnsRcode.NoError,
        };
        writer.AddFlags((ushort)rcode);
        writer.Release();
        if (query.Edns && writer.WriteOpt())
        {
            // The OPT record is the last additional one.
            var span = writer.Written;
            DnsHeader.SetCount(span, Additional, DnsHeader.Count(span, Additional) + 1);
        }

        return result;
    }
}
