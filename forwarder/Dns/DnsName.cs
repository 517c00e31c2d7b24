namespace Forwarder.Dns;

/// <summary>
/// Domain names in wire form. Read names come out uncompressed and lower-cased (ASCII), which is
/// the form the zone and the cache key on, so a lookup needs no string.
/// </summary>
internal static class DnsName
{
    /// <summary>Wire length limit of a name, root label included (RFC 1035 2.3.4).</summary>
    public const int MaxLength = 255;

    private const int MaxLabel = 63;

    /// <summary>
    /// Reads the possibly compressed name at <paramref name="offset"/> into <paramref name="name"/>
    /// (at least <see cref="MaxLength"/> bytes) and moves <paramref name="offset"/> past it.
    /// Pointers must point backwards, and the name must stay within 255 bytes, so loops end.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> message, ref int offset, Span<byte> name, out int length)
    {
        length = 0;
        var position = offset;
        var end = -1;
        var hops = 0;
        while (true)
        {
            if (position >= message.Length)
            {
                return false;
            }

            var label = message[position];
            if (label == 0)
            {
                name[length++] = 0;
                offset = end < 0 ? position + 1 : end;
                return true;
            }

            if ((label & 0xC0) == 0xC0)
            {
                if (position + 1 >= message.Length || ++hops > 64)
                {
                    return false;
                }

                var target = ((label & 0x3F) << 8) | message[position + 1];
                if (target >= position)
                {
                    return false;
                }

                if (end < 0)
                {
                    end = position + 2;
                }

                position = target;
                continue;
            }

            if (label > MaxLabel || position + 1 + label > message.Length || length + 1 + label + 1 > MaxLength)
            {
                return false;
            }

            name[length++] = label;
            for (var i = 0; i < label; i++)
            {
                var c = message[position + 1 + i];
                name[length++] = c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c | 0x20) : c;
            }

            position += 1 + label;
        }
    }

    /// <summary>Moves <paramref name="offset"/> past the name there without reading it out.</summary>
    public static bool TrySkip(ReadOnlySpan<byte> message, ref int offset)
    {
        Span<byte> scratch = stackalloc byte[MaxLength];
        return TryRead(message, ref offset, scratch, out _);
    }

    /// <summary>Whether <paramref name="name"/> is <paramref name="zone"/> or below it (both lower-cased wire form).</summary>
    public static bool IsAtOrBelow(ReadOnlySpan<byte> name, ReadOnlySpan<byte> zone)
    {
        var position = 0;
        while (name.Length - position > zone.Length)
        {
            position += 1 + name[position];
        }

        return name.Length - position == zone.Length && name[position..].SequenceEqual(zone);
    }

    /// <summary>The wire form of a dotted name ("web.default.svc.cluster.local"), lower-cased.</summary>
    public static byte[] FromText(string text)
    {
        var trimmed = text.Trim('.');
        var bytes = new byte[trimmed.Length == 0 ? 1 : trimmed.Length + 2];
        var length = 0;
        foreach (var label in trimmed.Length == 0 ? [] : trimmed.Split('.'))
        {
            if (label.Length is 0 or > MaxLabel)
            {
                throw new ArgumentException($"'{text}' is not a domain name", nameof(text));
            }

            bytes[length++] = (byte)label.Length;
            foreach (var c in label.ToLowerInvariant())
            {
                bytes[length++] = (byte)c;
            }
        }

        bytes[length] = 0;
        return bytes.Length > MaxLength ? throw new ArgumentException($"'{text}' is longer than 255 bytes", nameof(text)) : bytes;
    }

    /// <summary>The wire form of <paramref name="label"/> followed by <paramref name="rest"/>.</summary>
    public static byte[] Prepend(string label, ReadOnlySpan<byte> rest)
    {
        var bytes = new byte[1 + label.Length + rest.Length];
        bytes[0] = (byte)label.Length;
        for (var i = 0; i < label.Length; i++)
        {
            bytes[1 + i] = (byte)char.ToLowerInvariant(label[i]);
        }

        rest.CopyTo(bytes.AsSpan(1 + label.Length));
        return bytes;
    }

    /// <summary>Dotted text of a wire name, for logs and tests.</summary>
    public static string ToText(ReadOnlySpan<byte> name)
    {
        var text = new System.Text.StringBuilder();
        for (var position = 0; position < name.Length && name[position] != 0; position += 1 + name[position])
        {
            text.Append(System.Text.Encoding.ASCII.GetString(name.Slice(position + 1, name[position]))).Append('.');
        }

        return text.Length == 0 ? "." : text.ToString();
    }
}
