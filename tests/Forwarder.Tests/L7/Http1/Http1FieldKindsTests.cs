using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class Http1FieldKindsTests
{
    /// <summary>Every special name, lower case, with the kind it stands for.</summary>
    private static readonly (string Name, Http1FieldKind Kind)[] Special =
    [
        ("te", Http1FieldKind.TE),
        ("via", Http1FieldKind.Via),
        ("host", Http1FieldKind.Host),
        ("expect", Http1FieldKind.Expect),
        ("upgrade", Http1FieldKind.Upgrade),
        ("trailer", Http1FieldKind.Trailer),
        ("connection", Http1FieldKind.Connection),
        ("keep-alive", Http1FieldKind.KeepAlive),
        ("x-request-id", Http1FieldKind.XRequestId),
        ("content-length", Http1FieldKind.ContentLength),
        ("x-forwarded-for", Http1FieldKind.XForwardedFor),
        ("x-forwarded-host", Http1FieldKind.XForwardedHost),
        ("proxy-connection", Http1FieldKind.ProxyConnection),
        ("transfer-encoding", Http1FieldKind.TransferEncoding),
        ("x-forwarded-proto", Http1FieldKind.XForwardedProto),
        ("http2-settings", Http1FieldKind.Http2Settings),
        ("content_length", Http1FieldKind.UnderscoredFraming),
        ("transfer_encoding", Http1FieldKind.UnderscoredFraming),
    ];

    private static Http1FieldKind Of(string name) => Http1FieldKinds.Of(Encoding.Latin1.GetBytes(name));

    [Fact]
    public void Of_SpecialNames_CoverEveryKindButOther()
    {
        Assert.Equal(Special.Length, Special.Select(special => special.Name).Distinct().Count());
        Assert.Equal(
            Enum.GetValues<Http1FieldKind>().Where(kind => kind != Http1FieldKind.Other).Order(),
            Special.Select(special => special.Kind).Distinct().Order());
    }

    [Theory]
    [InlineData("te", "TE")]
    [InlineData("TE", "TE")]
    [InlineData("Te", "TE")]
    [InlineData("tE", "TE")]
    [InlineData("Via", "Via")]
    [InlineData("VIA", "Via")]
    [InlineData("Host", "Host")]
    [InlineData("HOST", "Host")]
    [InlineData("hOsT", "Host")]
    [InlineData("Expect", "Expect")]
    [InlineData("EXPECT", "Expect")]
    [InlineData("Upgrade", "Upgrade")]
    [InlineData("UPGRADE", "Upgrade")]
    [InlineData("Trailer", "Trailer")]
    [InlineData("tRAILER", "Trailer")]
    [InlineData("Connection", "Connection")]
    [InlineData("CONNECTION", "Connection")]
    [InlineData("Keep-Alive", "KeepAlive")]
    [InlineData("KEEP-ALIVE", "KeepAlive")]
    [InlineData("X-Request-Id", "XRequestId")]
    [InlineData("X-REQUEST-ID", "XRequestId")]
    [InlineData("Content-Length", "ContentLength")]
    [InlineData("content-LENGTH", "ContentLength")]
    [InlineData("X-Forwarded-For", "XForwardedFor")]
    [InlineData("x-forwarded-FOR", "XForwardedFor")]
    [InlineData("X-Forwarded-Host", "XForwardedHost")]
    [InlineData("x-forwarded-hosT", "XForwardedHost")]
    [InlineData("Proxy-Connection", "ProxyConnection")]
    [InlineData("proxy-connectioN", "ProxyConnection")]
    [InlineData("Transfer-Encoding", "TransferEncoding")]
    [InlineData("TRANSFER-ENCODING", "TransferEncoding")]
    [InlineData("X-Forwarded-Proto", "XForwardedProto")]
    [InlineData("X-FORWARDED-PROTO", "XForwardedProto")]
    [InlineData("HTTP2-Settings", "Http2Settings")]
    [InlineData("Content_Length", "UnderscoredFraming")]
    [InlineData("TRANSFER_encoding", "UnderscoredFraming")]
    public void Of_SpecialName_IsItsKindInAnyCase(string name, string kind)
    {
        Assert.Equal(Enum.Parse<Http1FieldKind>(kind), Of(name));
    }

    [Fact]
    public void Of_SpecialNames_AreRecognisedWhicheverLettersAreUpperCase()
    {
        foreach (var (name, kind) in Special)
        {
            Assert.Equal(kind, Of(name));
            Assert.Equal(kind, Of(name.ToUpperInvariant()));
            for (var i = 0; i < name.Length; i++)
            {
                if (!char.IsAsciiLetter(name[i]))
                {
                    continue;
                }

                // One letter upper case, then every letter but that one.
                var one = name[..i] + char.ToUpperInvariant(name[i]) + name[(i + 1)..];
                var allButOne = name.ToUpperInvariant()[..i] + name[i] + name.ToUpperInvariant()[(i + 1)..];
                Assert.Equal(kind, Of(one));
                Assert.Equal(kind, Of(allButOne));
            }
        }
    }

    /// <summary>
    /// Any one byte changed into anything but the same letter in the other case makes the name
    /// ordinary (or, for '-' and '_', the other special name it then is). This catches a comparison that folds case by OR-ing 0x20 into every byte, which
    /// would take CR (0x0D) for '-' (0x2D) and '@' for '`'.
    /// </summary>
    [Fact]
    public void Of_SpecialNameWithAnyOneByteChanged_IsOther()
    {
        var misread = new List<string>();
        foreach (var (name, _) in Special)
        {
            var bytes = Encoding.ASCII.GetBytes(name);
            for (var i = 0; i < bytes.Length; i++)
            {
                var original = bytes[i];
                for (var value = 0; value < 256; value++)
                {
                    if (value == original || (char.IsAsciiLetter((char)original) && char.ToLowerInvariant((char)value) == (char)original))
                    {
                        continue;
                    }

                    bytes[i] = (byte)value;
                    var kind = Http1FieldKinds.Of(bytes);
                    if (kind != Http1FieldKind.Other && !Special.Contains((Encoding.ASCII.GetString(bytes).ToLowerInvariant(), kind)))
                    {
                        misread.Add($"{name} with byte {i} = 0x{value:x2} -> {kind}");
                    }
                }

                bytes[i] = original;
            }
        }

        Assert.Empty(misread);
    }

    [Theory]
    [InlineData("")]
    [InlineData("t")]
    [InlineData("tf")]
    [InlineData("et")]
    [InlineData("vie")]
    [InlineData("hast")]
    [InlineData("hos")]
    [InlineData("hosts")]
    [InlineData(" host")]
    [InlineData("expecs")]
    [InlineData("upgradf")]
    [InlineData("trailes")]
    [InlineData("upgrades")]
    [InlineData("connectiom")]
    [InlineData("keep-alivf")]
    [InlineData("keep_alive")]
    [InlineData("keepalive")]
    [InlineData("x-request-ie")]
    [InlineData("content-lengtg")]
    [InlineData("content-length ")]
    [InlineData("x-forwarded-fox")]
    [InlineData("x-forwarded-hosu")]
    [InlineData("proxy-connectioo")]
    [InlineData("transfer-encodinh")]
    [InlineData("x-forwarded-proti")]
    [InlineData("transfer-encodings")]
    [InlineData("x-forwarded-server")]
    [InlineData("proxy-authorization")]
    [InlineData("x\rrequest\rid")]
    [InlineData("keep\ralive")]
    [InlineData("content\rlength")]
    [InlineData("\u00c8ost")]
    [InlineData("host\0")]
    public void Of_OrdinaryName_IsOther(string name)
    {
        Assert.Equal(Http1FieldKind.Other, Of(name));
    }

    [Fact]
    public void Of_LongNames_AreOther()
    {
        Assert.Equal(Http1FieldKind.Other, Of(new string('a', 18)));
        Assert.Equal(Http1FieldKind.Other, Of(new string('x', 1000)));
        Assert.Equal(Http1FieldKind.Other, Of("content-length" + new string('-', 100)));
    }

    [Fact]
    public void Of_ASpecialNameInsideALongerSpan_CountsOnlyTheSliceItIsGiven()
    {
        var line = "Content-Length: 5"u8;

        Assert.Equal(Http1FieldKind.ContentLength, Http1FieldKinds.Of(line[..14]));
        Assert.Equal(Http1FieldKind.Other, Http1FieldKinds.Of(line[..15]));
        Assert.Equal(Http1FieldKind.Other, Http1FieldKinds.Of(line[1..15]));
    }
}
