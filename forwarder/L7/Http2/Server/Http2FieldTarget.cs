using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Server;

/// <summary>Where the connection's one header validator passes decoded fields: the list of the block being decoded.</summary>
internal sealed class Http2FieldTarget : IHpackSink
{
    public Http2HeaderFields Current { get; set; } = new();

    public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Current.Add(name, value);
}
