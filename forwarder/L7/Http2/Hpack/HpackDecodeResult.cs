namespace Forwarder.L7.Http2.Hpack;

internal enum HpackDecodeResult
{
    Complete,

    /// <summary>
    /// The header list passed the size limit: the fields past it were decoded (the table stays in
    /// step with the peer's) but not given to the sink. The stream is refused; the connection goes on.
    /// </summary>
    HeaderListTooLarge,
}
