using System.Text;

namespace Forwarder.L7.Http2.Hpack;

/// <summary>The 61 entries of the HPACK static table (RFC 7541 Appendix A); index 1 is entry 0.</summary>
internal static class HpackStaticTable
{
    public const int Count = 61;

    private static readonly (byte[] Name, byte[] Value)[] Entries = Build(
    [
        (":authority", ""),
        (":method", "GET"),
        (":method", "POST"),
        (":path", "/"),
        (":path", "/index.html"),
        (":scheme", "http"),
        (":scheme", "https"),
        (":status", "200"),
        (":status", "204"),
        (":status", "206"),
        (":status", "304"),
        (":status", "400"),
        (":status", "404"),
        (":status", "500"),
        ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""),
        ("accept-ranges", ""),
        ("accept", ""),
        ("access-control-allow-origin", ""),
        ("age", ""),
        ("allow", ""),
        ("authorization", ""),
        ("cache-control", ""),
        ("content-disposition", ""),
        ("content-encoding", ""),
        ("content-language", ""),
        ("content-length", ""),
        ("content-location", ""),
        ("content-range", ""),
        ("content-type", ""),
        ("cookie", ""),
        ("date", ""),
        ("etag", ""),
        ("expect", ""),
        ("expires", ""),
        ("from", ""),
        ("host", ""),
        ("if-match", ""),
        ("if-modified-since", ""),
        ("if-none-match", ""),
        ("if-range", ""),
        ("if-unmodified-since", ""),
        ("last-modified", ""),
        ("link", ""),
        ("location", ""),
        ("max-forwards", ""),
        ("proxy-authenticate", ""),
        ("proxy-authorization", ""),
        ("range", ""),
        ("referer", ""),
        ("refresh", ""),
        ("retry-after", ""),
        ("server", ""),
        ("set-cookie", ""),
        ("strict-transport-security", ""),
        ("transfer-encoding", ""),
        ("user-agent", ""),
        ("vary", ""),
        ("via", ""),
        ("www-authenticate", ""),
    ]);

    /// <summary>
    /// Per name length, the first index of each name that long: every request's fields are looked
    /// up (each side encodes them), and this compares a few names where a scan compared 61.
    /// </summary>
    private static readonly int[][] FirstByNameLength = IndexByNameLength();

    public static ReadOnlySpan<byte> Name(int index) => Entries[index - 1].Name;

    public static ReadOnlySpan<byte> Value(int index) => Entries[index - 1].Value;

    /// <summary>The index of the entry with this name and value, or 0.</summary>
    public static int Find(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var first = FindName(name);
        if (first == 0)
        {
            return 0;
        }

        // The entries of one name are adjacent (:method, :path, :scheme, :status).
        var entries = Entries;
        for (var i = first - 1; i < entries.Length && entries[i].Name.AsSpan().SequenceEqual(name); i++)
        {
            if (entries[i].Value.AsSpan().SequenceEqual(value))
            {
                return i + 1;
            }
        }

        return 0;
    }

    /// <summary>The first index with this name, or 0.</summary>
    public static int FindName(ReadOnlySpan<byte> name)
    {
        var byLength = FirstByNameLength;
        if (name.Length >= byLength.Length)
        {
            return 0;
        }

        foreach (var index in byLength[name.Length])
        {
            if (Entries[index - 1].Name.AsSpan().SequenceEqual(name))
            {
                return index;
            }
        }

        return 0;
    }

    private static int[][] IndexByNameLength()
    {
        var byLength = new List<int>[Entries.Max(e => e.Name.Length) + 1];
        for (var i = 0; i < Entries.Length; i++)
        {
            var name = Entries[i].Name;
            if (i == 0 || !Entries[i - 1].Name.AsSpan().SequenceEqual(name))
            {
                (byLength[name.Length] ??= []).Add(i + 1);
            }
        }

        return Array.ConvertAll(byLength, indexes => indexes?.ToArray() ?? []);
    }

    private static (byte[] Name, byte[] Value)[] Build((string Name, string Value)[] entries) =>
        Array.ConvertAll(entries, e => (Encoding.ASCII.GetBytes(e.Name), Encoding.ASCII.GetBytes(e.Value)));
}
