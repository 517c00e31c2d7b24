namespace Forwarder.L7.Http1;

/// <summary>How much of a request head the parser accepts before it answers 414 or 431.</summary>
/// <param name="MaxRequestLine">Bytes of the request line, CRLF included; longer is 414 URI Too Long.</param>
/// <param name="MaxHeadBytes">Bytes of the whole head; longer is 431 Request Header Fields Too Large.</param>
/// <param name="MaxHeaders">Header fields; more is 431.</param>
internal sealed record Http1Limits(int MaxRequestLine = 8 * 1024, int MaxHeadBytes = 32 * 1024, int MaxHeaders = 100)
{
    public static Http1Limits Default { get; } = new();
}
