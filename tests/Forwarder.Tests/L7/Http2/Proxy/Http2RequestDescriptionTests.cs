using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;
using Forwarder.L7.Http2.Proxy;
using Forwarder.L7.Http2.Server;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// The native front fills the routed head straight from the HTTP/2 fields: it must come to what
/// the HTTP/1 parser makes of the same request written as an HTTP/1.1 head (Host from :authority,
/// cookie crumbs joined into one line), the same fields with the same kinds, the same framing,
/// and the same refusal, for requests at and past every limit and for every check the parser makes.
/// </summary>
public sealed class Http2RequestDescriptionTests
{
    private static readonly Http1Limits Tight = new(MaxRequestLine: 64, MaxHeadBytes: 256, MaxHeaders: 5);

    public static TheoryData<string> Requests() =>
    [
        ":method GET|:path /a/b?x=1|:authority api.example.com|user-agent t|accept */*",
        ":method GET|:path /|host h.example",
        ":method GET|:path /|:authority a.example|host b.example",
        ":method GET|:path /",
        ":method POST|:path /p|:authority a|content-length 5",
        ":method POST|:path /p|:authority a|content-length 5, 5",
        ":method POST|:path /p|:authority a|content-length 5|content-length 6",
        ":method POST|:path /p|:authority a|content-length 5,6",
        ":method POST|:path /p|:authority a|content-length x5",
        ":method POST|:path /p|:authority a|content-length ",
        ":method POST|:path /p|:authority a|content-length 1234567890123456789",
        ":method POST|:path /p|:authority a|expect 100-continue",
        ":method POST|:path /p|:authority a|expect something",
        ":method GET|:path /p|:authority a:80@evil.com",
        ":method GET|:path /p|:authority evil.com#.x",
        ":method GET|:path /p|:authority a b",
        ":method GET|:path /p|:authority a\u0001b",
        ":method GET|:path /p|:authority [::1]:8080",
        ":method GET|:path /p|:authority a:99999999",
        ":method GE T|:path /p|:authority a",
        ":method |:path /p|:authority a",
        ":method G(T|:path /p|:authority a",
        ":method GET|:path /a b|:authority a",
        ":method GET|:path /a#b|:authority a",
        ":method GET|:path /a\u00e9|:authority a",
        ":method GET|:path /p|:authority a|cookie a=1|x-y 1|cookie b=2|cookie c=3",
        ":method GET|:path /p|:authority a|cookie a=1|cookie ",
        ":method GET|:path /p|:authority a|cookie |cookie |cookie ",
        ":method GET|:path /p|:authority a|cookie |cookie b=2",
        ":method GET|:path /p|:authority a|x-forwarded-for 1.2.3.4|x-request-id r|te trailers|via 1.1 x|content_length 3",
        ":method GET|:path /p|:authority a|a 1|b 2|c 3|d 4",
        ":method GET|:path /p|:authority a|a 1|b 2|c 3|d 4|e 5",
        ":method GET|:path /p|:authority a|a 1|b 2|c 3|cookie x|cookie y",
        ":method GET|:path /p|:authority a|a 1|b 2|c 3|d 4|cookie x",
        ":method GET|:path /p|:authority a|a 1|b 2|c 3|d 4|e 5|content-length x",
        ":method GET|:path /p|:authority a|content-length x|a 1|b 2|c 3|d 4|e 5",
        ":method GET|:path /p|:authority a b|a 1|b 2|c 3|d 4|e 5",
        ":method GET|:path /p|:authority a\u0001|a 1|b 2|c 3|d 4|e 5",
        ":method GET|:path /p|:authority a|expect nope|a 1|b 2|c 3|d 4|e 5",
        ":method GET|:path /" + new string('a', 43) + "|:authority a",
        ":method GET|:path /" + new string('a', 44) + "|:authority a",
        ":method GET|:path /" + new string('a', 44) + "|:authority a\u0001",
        ":method GET|:path /p|:authority a|x " + new string('v', 200),
        ":method GET|:path /p|:authority a|x " + new string('v', 214),
        ":method GET|:path /p|:authority a|x " + new string('v', 215),
        ":method GET|:path /p|:authority a|cookie " + new string('v', 100) + "|cookie " + new string('v', 107),
        ":method GET|:path /p|:authority a|cookie " + new string('v', 100) + "|cookie " + new string('v', 108),
        ":method OPTIONS|:path *|:authority a",
        ":method GET|:path http://a/x|:authority a",
        ":method CONNECT|:authority a:443",
        ":method GET|:path /a/../b/./c%2F?q=%41|:authority a",
    ];

    [Theory]
    [MemberData(nameof(Requests))]
    public void Fill_AgreesWithTheHttp1ParserOnTheSameRequest(string request)
    {
        foreach (var limits in new[] { Http1Limits.Default, Tight })
        {
            var fields = Fields(request);
            var filled = new Http1RequestHead();
            var parsed = new Http1RequestHead();
            var status = Http2RequestDescription.Fill(fields, limits, filled);
            var expected = ParseAsHttp1(fields, limits, parsed);
            Assert.Equal(expected, status);
            if (status == 0)
            {
                AssertSame(parsed, filled);
            }
        }
    }

    [Fact]
    public void Fill_AgreesWithTheHttp1Parser_OnRandomRequests()
    {
        var random = new Random(20261207);
        string[] names = ["a", "x-user", "cookie", "cookie", "host", "content-length", "expect", "te", "via", "user-agent"];
        string[] values = ["", "1", "5", "5, 5", "1,2", "v", "100-continue", "trailers", "session=abc", "a b", new string('z', 60)];
        string[] paths = ["/", "/x?y", "/a/../b", "/a b", "/" + new string('p', 50), "/#"];
        string[] hosts = ["", "h.example", "h:1", "bad host", "[::1]"];
        for (var n = 0; n < 2000; n++)
        {
            var parts = new List<string> { ":method GET", ":path " + paths[random.Next(paths.Length)], ":authority " + hosts[random.Next(hosts.Length)] };
            for (var i = random.Next(8); i > 0; i--)
            {
                parts.Add(names[random.Next(names.Length)] + " " + values[random.Next(values.Length)]);
            }

            Fill_AgreesWithTheHttp1ParserOnTheSameRequest(string.Join('|', parts));
        }
    }

    [Fact]
    public void NormalizedPath_MovesTheQueryUp_AsForAParsedHead()
    {
        var head = new Http1RequestHead();
        Assert.Equal(0, Http2RequestDescription.Fill(Fields(":method GET|:path /a/../b/./c?q=1|:authority a|x 1"), Http1Limits.Default, head));
        Assert.True(head.NormalizePath(Forwarder.L7.Routing.PathNormalization.DotSegments));
        Assert.Equal("/b/c", Encoding.ASCII.GetString(head.Path));
        Assert.Equal("/b/c?q=1", Encoding.ASCII.GetString(head.Target));
        Assert.Equal("q=1", Encoding.ASCII.GetString(head.Query));
        Assert.Equal("a", Encoding.ASCII.GetString(head.Host));
        Assert.Equal("1", Encoding.ASCII.GetString(head["x"u8]));
    }

    [Fact]
    public void AFailedCheck_NeverRefusesWithZero_WhichWouldMeanAccepted()
    {
        Assert.Equal(400, Http2RequestDescription.Refusal(default));
        Assert.Equal(431, Http2RequestDescription.Refusal(new Http1Error(431, "too many")));
    }

    /// <summary>"name value|name value": each field split at its first space (a value may hold more).</summary>
    private static Http2HeaderFields Fields(string request)
    {
        var fields = new Http2HeaderFields();
        foreach (var field in request.Split('|'))
        {
            var space = field.IndexOf(' ', StringComparison.Ordinal);
            fields.Add(Encoding.Latin1.GetBytes(field[..space]), Encoding.Latin1.GetBytes(field[(space + 1)..]));
        }

        return fields;
    }

    /// <summary>The way the native front described a request before: as HTTP/1.1 text, parsed by the HTTP/1 parser.</summary>
    private static int ParseAsHttp1(Http2HeaderFields fields, Http1Limits limits, Http1RequestHead head)
    {
        var method = Encoding.Latin1.GetString(fields.Get(":method"u8));
        var path = Encoding.Latin1.GetString(fields.Get(":path"u8));
        if (path.Length == 0 || method == "CONNECT")
        {
            return 501;
        }

        if (path[0] != '/')
        {
            return 400;
        }

        var host = fields.Get(":authority"u8).IsEmpty ? fields.Get("host"u8) : fields.Get(":authority"u8);
        var text = new StringBuilder($"{method} {path} HTTP/1.1\r\nhost: {Encoding.Latin1.GetString(host)}\r\n");
        var cookies = new List<string>();
        for (var i = 0; i < fields.Count; i++)
        {
            var name = Encoding.Latin1.GetString(fields.Name(i));
            var value = Encoding.Latin1.GetString(fields.Value(i));
            if (name == "cookie")
            {
                cookies.Add(value);
            }
            else if (name[0] != ':' && name != "host")
            {
                text.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }

        if (cookies.Count > 0)
        {
            text.Append("cookie: ").AppendJoin("; ", cookies).Append("\r\n");
        }

        text.Append("\r\n");
        var status = Http1RequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text.ToString())), limits, head, out _, out var error);
        return status == Http1ParseStatus.Complete ? 0 : error.Status;
    }

    private static void AssertSame(Http1RequestHead expected, Http1RequestHead actual)
    {
        Assert.Equal(expected.Method.ToArray(), actual.Method.ToArray());
        Assert.Equal(expected.Target.ToArray(), actual.Target.ToArray());
        Assert.Equal(expected.Path.ToArray(), actual.Path.ToArray());
        Assert.Equal(expected.Query.ToArray(), actual.Query.ToArray());
        Assert.Equal(expected.Host.ToArray(), actual.Host.ToArray());
        Assert.Equal(expected.Version, actual.Version);
        Assert.Equal(expected.ContentLength, actual.ContentLength);
        Assert.Equal((expected.Chunked, expected.KeepAlive, expected.ExpectContinue, expected.Upgrade), (actual.Chunked, actual.KeepAlive, actual.ExpectContinue, actual.Upgrade));
        Assert.Equal(expected.ConnectionNamesFields, actual.ConnectionNamesFields);
        Assert.Equal(expected.HeaderCount, actual.HeaderCount);
        for (var i = 0; i < expected.HeaderCount; i++)
        {
            Assert.Equal(Encoding.Latin1.GetString(expected.HeaderName(i)), Encoding.Latin1.GetString(actual.HeaderName(i)));
            Assert.Equal(Encoding.Latin1.GetString(expected.HeaderValue(i)), Encoding.Latin1.GetString(actual.HeaderValue(i)));
            Assert.Equal(expected.HeaderKind(i), actual.HeaderKind(i));
        }
    }
}
