namespace Forwarder.L7.Http2.Hpack;

/// <summary>How <see cref="HpackEncoder"/> may represent a field that is not already in a table (RFC 7541 6.2).</summary>
internal enum HpackIndexing
{
    /// <summary>A literal the peer does not add to its table: the default, and always what an encoder without a dynamic table sends.</summary>
    WithoutIndexing,

    /// <summary>A literal added to both tables, so the next identical field is one index.</summary>
    Incremental,

    /// <summary>A literal no intermediary may ever index (secrets such as authorization or cookies).</summary>
    NeverIndexed,
}
