using System.Text;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Hpack;
using Forwarder.Tests.L7.Http2.Hpack;

namespace Forwarder.Tests.L7.Http2.Codec;

public sealed class Http2RequestHeaderValidatorTests
{
    private const string Get = ":method=GET|:scheme=https|:authority=a|:path=/x";

    [Theory]
    [InlineData(Get)]
    [InlineData(Get + "|te=trailers|content-type=application/grpc|x-empty=")]
    [InlineData(":method=CONNECT|:authority=a:443")]
    [InlineData(":method=CONNECT|:protocol=websocket|:scheme=https|:authority=a|:path=/chat")]
    [InlineData(":method=OPTIONS|:scheme=http|:path=*")]
    public void End_WellFormedRequest_NullAndEveryFieldPassedOn(string fields)
    {
        var validator = Validate(fields, trailers: false);

        Assert.Null(validator.End());
        Assert.Equal(fields.Split('|').Length, validator.Inner.Fields.Count);
    }

    [Theory]
    [InlineData(Get + "|Content-Type=text", "uppercase name")]
    [InlineData(Get + "|x y=1", "space in a name")]
    [InlineData(Get + "|x-a=a\rb", "CR in a value")]
    [InlineData(Get + "|x-a= padded", "leading whitespace")]
    [InlineData(Get + "|connection=keep-alive", "connection")]
    [InlineData(Get + "|transfer-encoding=chunked", "transfer-encoding")]
    [InlineData(Get + "|upgrade=h2c", "upgrade")]
    [InlineData(Get + "|keep-alive=5", "keep-alive")]
    [InlineData(Get + "|proxy-connection=close", "proxy-connection")]
    [InlineData(Get + "|te=gzip", "te other than trailers")]
    [InlineData(":method=GET|x-a=1|:scheme=https|:path=/", "pseudo-header after a regular field")]
    [InlineData(Get + "|:status=200", "response pseudo-header")]
    [InlineData(Get + "|:path=/y", "repeated :path")]
    [InlineData(":scheme=https|:path=/", "no :method")]
    [InlineData(":method=GET|:scheme=https", "no :path")]
    [InlineData(":method=GET|:scheme=https|:path=", "empty :path")]
    [InlineData(":method=CONNECT|:scheme=https|:authority=a|:path=/", "plain CONNECT with :scheme and :path")]
    [InlineData(":method=CONNECT", "CONNECT without :authority")]
    [InlineData(Get + "|:protocol=websocket", ":protocol without CONNECT")]
    public void End_MalformedRequest_Reason(string fields, string why)
    {
        var validator = Validate(fields, trailers: false);

        Assert.True(validator.End() is not null, why);
    }

    [Fact]
    public void End_Trailers_RegularFieldsOnly()
    {
        Assert.Null(Validate("grpc-status=0|grpc-message=ok", trailers: true).End());
        Assert.NotNull(Validate("grpc-status=0|:path=/", trailers: true).End());
    }

    [Fact]
    public void OnHeader_AfterMalformedField_StopsPassingFieldsButTheDecoderKeepsItsTable()
    {
        var validator = new Http2RequestHeaderValidator<HeaderList>(new HeaderList());
        var decoder = new HpackDecoder(4096, 16_384);
        var encoder = new HpackEncoder(4096);
        var block = HeaderList.Encode(encoder, [(":method", "GET"), ("connection", "close"), ("x-later", "kept")], HpackIndexing.Incremental);

        validator.Begin(trailers: false);
        decoder.Decode(Convert.FromHexString(block), ref validator);

        Assert.Equal("a connection-specific field", validator.End());
        Assert.Equal([(":method", "GET")], validator.Inner.Fields);
        Assert.Equal([("x-later", "kept"), ("connection", "close")], HeaderList.Table(decoder.Table));
    }

    private static Http2RequestHeaderValidator<HeaderList> Validate(string fields, bool trailers)
    {
        var validator = new Http2RequestHeaderValidator<HeaderList>(new HeaderList());
        validator.Begin(trailers);
        foreach (var field in fields.Split('|'))
        {
            var at = field.IndexOf('=', 1);
            validator.OnHeader(Encoding.Latin1.GetBytes(field[..at]), Encoding.Latin1.GetBytes(field[(at + 1)..]));
        }

        return validator;
    }
}
