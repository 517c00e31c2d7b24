using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using static Forwarder.Tests.L7.Http2.Hpack.Rfc7541Examples;

namespace Forwarder.Tests.L7.Http2.Hpack;

public sealed class HpackDecoderTests
{
    [Theory]
    [InlineData("400a637573746f6d2d6b65790d637573746f6d2d686561646572", "custom-key", "custom-header", 1)] // C.2.1
    [InlineData("040c2f73616d706c652f70617468", ":path", "/sample/path", 0)] // C.2.2
    [InlineData("100870617373776f726406736563726574", "password", "secret", 0)] // C.2.3
    [InlineData("82", ":method", "GET", 0)] // C.2.4
    public void Decode_Rfc7541C2Literals_FieldAndTableAsInTheRfc(string hex, string name, string value, int entries)
    {
        var decoder = new HpackDecoder(4096, 16_384);

        Assert.Equal([(name, value)], HeaderList.Decode(decoder, hex));
        Assert.Equal(entries, decoder.Table.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_Rfc7541C3C4Requests_FieldsAndTableAsInTheRfc(bool huffman)
    {
        var decoder = new HpackDecoder(4096, 16_384);
        var blocks = huffman ? RequestsHuffman : RequestsRaw;

        for (var i = 0; i < blocks.Length; i++)
        {
            Assert.Equal(Requests[i], HeaderList.Decode(decoder, blocks[i]));
        }

        Assert.Equal([("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")], HeaderList.Table(decoder.Table));
        Assert.Equal(164, decoder.Table.Size);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_Rfc7541C5C6ResponsesInA256ByteTable_EvictsAsTheRfc(bool huffman)
    {
        var decoder = new HpackDecoder(4096, 16_384);
        var blocks = huffman ? ResponsesHuffman : ResponsesRaw;
        decoder.Table.Resize(256);

        for (var i = 0; i < blocks.Length; i++)
        {
            Assert.Equal(Responses[i], HeaderList.Decode(decoder, blocks[i]));
            Assert.Equal(ResponseTables[i], HeaderList.Table(decoder.Table));
            Assert.Equal(ResponseTableSizes[i], decoder.Table.Size);
        }
    }

    [Fact]
    public void Decode_ManyInsertsThroughASmallTable_KeepsTheNewestEntriesIntact()
    {
        // Far more bytes than the table holds: the entries' bytes wrap round its array many times.
        var decoder = new HpackDecoder(256, 16_384);
        var encoder = new HpackEncoder(256, huffman: false);

        for (var i = 0; i < 500; i++)
        {
            var fields = new[] { ($"n{i % 7}", new string((char)('a' + (i % 26)), i % 40)), ("x", i.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
            var block = HeaderList.Encode(encoder, fields, HpackIndexing.Incremental);
            Assert.Equal(fields, HeaderList.Decode(decoder, block));
        }
    }

    [Theory]
    [InlineData("80", "index 0")]
    [InlineData("be", "index past the table")]
    [InlineData("ff80808080808080", "integer of 8 continuation bytes")]
    [InlineData("ffffffffff0f", "integer past int.MaxValue")]
    [InlineData("ff", "integer cut short")]
    [InlineData("4005616263", "string longer than its block")]
    [InlineData("40", "name missing")]
    [InlineData("400161", "value missing")]
    [InlineData("008102", "Huffman: padding that is not the EOS prefix")] // '0' (00000), then 010
    [InlineData("008207ff", "Huffman: padding longer than 7 bits")] // '0', then 11 one-bits
    [InlineData("0084ffffffff", "Huffman: EOS inside a string")]
    [InlineData("3fe21f", "table size update above the setting")] // 31 + 4066 = 4097
    [InlineData("823f00", "table size update after a field")]
    public void Decode_MalformedBlock_CompressionError(string hex, string why)
    {
        var decoder = new HpackDecoder(4096, 16_384);
        var sink = new HeaderList();

        var error = Assert.Throws<Http2ConnectionException>(() => decoder.Decode(Convert.FromHexString(hex), ref sink));

        Assert.True(error.Code == Http2ErrorCode.CompressionError, why);
    }

    [Fact]
    public void Decode_TableSizeUpdates_AtTheStartEvictAndAreAllowed()
    {
        var decoder = new HpackDecoder(4096, 16_384);
        HeaderList.Decode(decoder, RequestsRaw[0]);

        // 0 (evict all), then 4096 again; then a field.
        Assert.Equal([(":method", "GET")], HeaderList.Decode(decoder, "203fe11f82"));

        Assert.Equal(0, decoder.Table.Count);
        Assert.Equal(4096, decoder.Table.MaxSize);
    }

    [Fact]
    public void Decode_HeaderListOverTheLimit_TooLargeButTableKeptInStep()
    {
        var decoder = new HpackDecoder(4096, 100);
        var sink = new HeaderList();

        // 42 + 43 bytes of list, then :path passes 100; the two literals after it still add entries.
        var result = decoder.Decode(Convert.FromHexString("8286844003616263" + "03" + "646566" + "400a637573746f6d2d6b65790c637573746f6d2d76616c7565"), ref sink);

        Assert.Equal(HpackDecodeResult.HeaderListTooLarge, result);
        Assert.Equal([(":method", "GET"), (":scheme", "http")], sink.Fields);
        Assert.Equal([("custom-key", "custom-value"), ("abc", "def")], HeaderList.Table(decoder.Table));
    }

    [Fact]
    public void Decode_HuffmanStringLongerThanTheLimitAllows_CompressionError()
    {
        var decoder = new HpackDecoder(4096, 64);
        var value = new string('a', 200);
        var block = HeaderList.Encode(new HpackEncoder(), [("x", value)], HpackIndexing.WithoutIndexing);
        var sink = new HeaderList();

        var error = Assert.Throws<Http2ConnectionException>(() => decoder.Decode(Convert.FromHexString(block), ref sink));

        Assert.Equal(Http2ErrorCode.CompressionError, error.Code);
    }

    [Fact]
    public void Decode_LiteralNamingAnEntryItEvicts_KeepsTheName()
    {
        // A 60-byte table holds one entry; the next literal indexes its name from it and replaces it (RFC 7541 4.4).
        var decoder = new HpackDecoder(60, 16_384);
        HeaderList.Decode(decoder, "400a637573746f6d2d6b65790161"); // custom-key: a, 43 bytes

        Assert.Equal([("custom-key", "bbbbbbbbbbb")], HeaderList.Decode(decoder, "7e0b6262626262626262626262"));
        Assert.Equal([("custom-key", "bbbbbbbbbbb")], HeaderList.Table(decoder.Table));
    }
}
