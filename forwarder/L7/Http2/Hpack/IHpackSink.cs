namespace Forwarder.L7.Http2.Hpack;

/// <summary>Receives the fields of a header block as <see cref="HpackDecoder"/> decodes them.</summary>
internal interface IHpackSink
{
    /// <summary>One field; both spans are valid only during the call.</summary>
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}
