using System.Net;
using Forwarder.Relay;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// The ADDRESS/TOKEN target of a relay's introduction, as the far node reads it: what the relay
/// writes parses back to the same address and token message; anything else is refused with a
/// reason that says what is wrong, and nothing throws.
/// </summary>
public sealed class IntroductionTargetTests
{
    private const string Token = "00112233445566778899aabbccddeeff";

    [Theory]
    [InlineData("203.0.113.7:4000")]
    [InlineData("127.0.0.1:1")]
    [InlineData("[2001:db8::7]:65535")]
    [InlineData("[fe80::1%2]:4000")]
    public void WhatTheRelayWrites_ParsesBack(string address)
    {
        var written = IntroductionTarget.Format(IPEndPoint.Parse(address), Token);
        Assert.Equal($"{address}/{Token}", written);

        Assert.True(IntroductionTarget.TryParse(written, RelayServer.TcpMagic, out var asker, out var message, out var error), error);
        Assert.Equal((IPEndPoint.Parse(address), string.Empty), (asker, error));
        Assert.Equal(RelayRendezvous.Message(RelayServer.TcpMagic, Token), message);
        Assert.Equal(Convert.FromHexString("46575254" + Token), message); // "FWRT", then the token's bytes
    }

    [Fact]
    public void AnIPv4MappedAddress_IsTheIPv4ItStandsFor_AndAnUppercaseTokenTheSameBytes()
    {
        Assert.True(IntroductionTarget.TryParse($"[::ffff:198.51.100.9]:4000/{Token.ToUpperInvariant()}", RelayRendezvous.Magic, out var asker, out var message, out var error), error);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.51.100.9"), 4000), asker);
        Assert.Equal(RelayRendezvous.Message(RelayRendezvous.Magic, Token), message);
    }

    [Theory]
    [InlineData("", "an empty target")]
    [InlineData("203.0.113.7:4000", "no '/' between the address and the token")]
    [InlineData("203.0.113.7:4000/", "no token after the '/'")]
    [InlineData("/" + Token, "no address before the '/'")]
    [InlineData("/", "no address before the '/'")]
    [InlineData("203.0.113.7:4000/" + Token + "/", "more than one '/'")]
    [InlineData("203.0.113.7:4000//" + Token, "more than one '/'")]
    [InlineData("10.0.0.1/8/" + Token, "more than one '/'")]
    [InlineData("203.0.113.7:4000/0011", "a token that is not 32 hex digits")]
    [InlineData("203.0.113.7:4000/" + Token + "00", "a token that is not 32 hex digits")]
    [InlineData("203.0.113.7:4000/zz112233445566778899aabbccddeeff", "a token that is not 32 hex digits")]
    [InlineData("203.0.113.7:4000/ 0112233445566778899aabbccddeeff", "a token that is not 32 hex digits")]
    [InlineData("garbage/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7:/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7:65536/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7:-1/" + Token, "an address that is not an IP address and port")]
    [InlineData("127.1:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData(" 203.0.113.7:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7:04000/" + Token, "an address that is not an IP address and port")]
    [InlineData("2001:db8::7/" + Token, "an address that is not an IP address and port")]
    [InlineData("[2001:db8::7]/" + Token, "an address that is not an IP address and port")]
    [InlineData("2001:db8::7:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData("[2001:DB8::7]:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData("[2001:db8::7:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData("relay.example:4000/" + Token, "an address that is not an IP address and port")]
    [InlineData("203.0.113.7:0/" + Token, "port 0")]
    [InlineData("[2001:db8::7]:0/" + Token, "port 0")]
    [InlineData("0.0.0.0:4000/" + Token, "an address that is not one host's")]
    [InlineData("255.255.255.255:4000/" + Token, "an address that is not one host's")]
    [InlineData("224.0.0.1:4000/" + Token, "an address that is not one host's")]
    [InlineData("[::]:4000/" + Token, "an address that is not one host's")]
    [InlineData("[ff02::1]:4000/" + Token, "an address that is not one host's")]
    [InlineData("[::ffff:239.1.2.3]:4000/" + Token, "an address that is not one host's")]
    public void BadTargets_AreRefused_WithTheReason(string target, string reason)
    {
        Assert.False(IntroductionTarget.TryParse(target, RelayRendezvous.Magic, out _, out _, out var error));
        Assert.StartsWith(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnOversizeTarget_IsRefused_BeforeItIsParsed()
    {
        var target = $"[2001:db8::7]:4000/{Token}{new string('0', IntroductionTarget.MaxLength)}";
        Assert.False(IntroductionTarget.TryParse(target, RelayRendezvous.Magic, out _, out _, out var error));
        Assert.Equal($"{target.Length} characters, longer than ADDRESS/TOKEN can be ({IntroductionTarget.MaxLength})", error);
        Assert.False(IntroductionTarget.TryParse(new string('/', TunnelHandshake.MaxFieldLength), RelayRendezvous.Magic, out _, out _, out error));
        Assert.Contains("longer than ADDRESS/TOKEN", error, StringComparison.Ordinal);

        // The longest address the relay may write still fits.
        var longest = IntroductionTarget.Format(new IPEndPoint(IPAddress.Parse("fe80:ffff:ffff:ffff:ffff:ffff:ffff:fffe%4294967295"), 65535), Token);
        Assert.True(longest.Length <= IntroductionTarget.MaxLength, $"{longest} is {longest.Length} characters");
        Assert.True(IntroductionTarget.TryParse(longest, RelayRendezvous.Magic, out _, out _, out error), error);
    }

    // Whatever a relay (or a bug in one) sends: a reason, never an exception out of the session.
    [Fact]
    public void RandomTargets_NeverThrow_AndAlwaysSayWhy()
    {
        var random = new Random(20261207);
        const string alphabet = "0123456789abcdefABCDEF:/.[]%-fx \u00e9\u0000";
        for (var i = 0; i < 20_000; i++)
        {
            var target = new string([.. Enumerable.Range(0, random.Next(0, 120)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
            if (!IntroductionTarget.TryParse(target, RelayRendezvous.Magic, out var asker, out var message, out var error))
            {
                Assert.False(string.IsNullOrEmpty(error), $"no reason for '{target}'");
                continue;
            }

            Assert.Equal((20, string.Empty), (message.Length, error));
            Assert.NotEqual(0, asker.Port);
        }
    }
}
