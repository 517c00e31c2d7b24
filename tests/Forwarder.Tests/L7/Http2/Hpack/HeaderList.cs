using System.Text;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.Tests.L7.Http2.Hpack;

/// <summary>A sink that keeps the decoded fields as strings, to compare with what was expected.</summary>
internal sealed class HeaderList : IHpackSink
{
    public List<(string Name, string Value)> Fields { get; } = [];

    public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
        Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));

    public static (string, string)[] Decode(HpackDecoder decoder, string hex)
    {
        var sink = new HeaderList();
        Assert.Equal(HpackDecodeResult.Complete, decoder.Decode(Convert.FromHexString(hex), ref sink));
        return [.. sink.Fields];
    }

    public static string Encode(HpackEncoder encoder, (string Name, string Value)[] fields, HpackIndexing indexing)
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        encoder.BeginBlock(output);
        foreach (var (name, value) in fields)
        {
            encoder.Encode(Encoding.Latin1.GetBytes(name), Encoding.Latin1.GetBytes(value), output, indexing);
        }

        return Convert.ToHexStringLower(output.WrittenSpan);
    }

    public static (string, string)[] Table(HpackDynamicTable table) =>
        [.. Enumerable.Range(1, table.Count).Select(i => (Encoding.Latin1.GetString(table.Name(i)), Encoding.Latin1.GetString(table.Value(i))))];
}
