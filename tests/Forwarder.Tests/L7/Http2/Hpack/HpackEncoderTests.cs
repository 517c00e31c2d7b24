using System.Buffers;
using Forwarder.L7.Http2.Hpack;
using static Forwarder.Tests.L7.Http2.Hpack.Rfc7541Examples;

namespace Forwarder.Tests.L7.Http2.Hpack;

public sealed class HpackEncoderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Encode_Rfc7541C3C4RequestsWithIndexing_TheRfcsBytes(bool huffman)
    {
        var encoder = new HpackEncoder(4096, huffman);
        var expected = huffman ? RequestsHuffman : RequestsRaw;

        for (var i = 0; i < Requests.Length; i++)
        {
            Assert.Equal(expected[i], HeaderList.Encode(encoder, Requests[i], HpackIndexing.Incremental));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Encode_Rfc7541C5C6ResponsesInA256ByteTable_TheRfcsBytes(bool huffman)
    {
        var encoder = new HpackEncoder(256, huffman);
        var expected = huffman ? ResponsesHuffman : ResponsesRaw;

        for (var i = 0; i < Responses.Length; i++)
        {
            Assert.Equal(expected[i], HeaderList.Encode(encoder, Responses[i], HpackIndexing.Incremental));
        }
    }

    [Fact]
    public void Encode_WithoutDynamicTable_StaticIndexesAndLiteralsTheDecoderReads()
    {
        var encoder = new HpackEncoder();
        (string, string)[] fields = [(":status", "200"), ("content-type", "application/grpc"), ("x-custom", "v")];

        var hex = HeaderList.Encode(encoder, fields, HpackIndexing.Incremental);

        Assert.StartsWith("880f10", hex); // :status 200 indexed; content-type a literal without indexing, name 31
        var decoder = new HpackDecoder(4096, 16_384);
        Assert.Equal(fields, HeaderList.Decode(decoder, hex));
        Assert.Equal(0, decoder.Table.Count);
    }

    [Fact]
    public void Encode_NeverIndexed_UsesTheNeverIndexedRepresentation()
    {
        var hex = HeaderList.Encode(new HpackEncoder(4096, huffman: false), [("password", "secret")], HpackIndexing.NeverIndexed);

        Assert.Equal("100870617373776f726406736563726574", hex); // RFC 7541 C.2.3
    }

    [Fact]
    public void SetPeerMaxTableSize_SmallerThenLarger_NextBlockStartsWithBothUpdates()
    {
        var encoder = new HpackEncoder(4096, huffman: false);
        var decoder = new HpackDecoder(4096, 16_384);
        HeaderList.Decode(decoder, HeaderList.Encode(encoder, Requests[0], HpackIndexing.Incremental));

        encoder.SetPeerMaxTableSize(0);
        encoder.SetPeerMaxTableSize(1000);
        var hex = HeaderList.Encode(encoder, Requests[0], HpackIndexing.Incremental);

        Assert.StartsWith("203fc907", hex); // size 0, then size 1000
        Assert.Equal(Requests[0], HeaderList.Decode(decoder, hex));
        Assert.Equal(1000, decoder.Table.MaxSize);
        Assert.Equal([(":authority", "www.example.com")], HeaderList.Table(decoder.Table));
    }

    [Fact]
    public void Encode_SteadyState_AllocatesNothing()
    {
        var encoder = new HpackEncoder(4096);
        var decoder = new HpackDecoder(4096, 16_384);
        var output = new ArrayBufferWriter<byte>(4096);
        var name = "x-request-id"u8.ToArray();
        var value = "0123456789abcdef"u8.ToArray();
        var sink = new CountingSink();
        void RoundTrip()
        {
            output.ResetWrittenCount();
            encoder.BeginBlock(output);
            encoder.Encode(":method"u8, "GET"u8, output);
            encoder.Encode(":path"u8, "/greet.Greeter/SayHello"u8, output);
            encoder.Encode(name, value, output, HpackIndexing.Incremental);
            decoder.Decode(output.WrittenSpan, ref sink);
        }

        for (var i = 0; i < 100; i++)
        {
            RoundTrip();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            RoundTrip();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(3 * 1100, sink.Count);
    }

    private struct CountingSink : IHpackSink
    {
        public int Count;

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Count++;
    }
}
