using System.Text;
using static Forwarder.Tests.L7.Http2.Client.Http2ClientKit;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>
/// What the upstream client puts in a request's header block: literals as raw strings (no
/// Huffman coding per request), which an independent decoder (python3-hpack under python3-h2)
/// reads back as the fields sent, request after request on one connection.
/// </summary>
public sealed class Http2ClientHeaderBlockTests
{
    [Fact]
    public async Task RequestFields_GoAsRawLiterals_AndDecodeAsSent()
    {
        await using var server = await Http2PeerServer.StartBlockEchoAsync();
        await using var connection = await ConnectAsync(server.EndPoint);

        for (var i = 0; i < 3; i++)
        {
            var value = $"probe-value-{i}-abcdefgh";
            await using var stream = await connection.OpenStreamAsync(Head("GET", $"/r/{i}", server.EndPoint, ("user-agent", "forwarder-test/1.0"), ("x-probe", value)), endStream: true);
            var lines = (await ReadResponseAsync(stream)).Text.Split('\n');

            // A raw string literal: its length with the H bit clear, then its bytes as they are.
            Assert.Contains($"{value.Length:x2}{Convert.ToHexStringLower(Encoding.ASCII.GetBytes(value))}", lines[0], StringComparison.Ordinal);
            Assert.Contains($"{"/r/0".Length:x2}{Convert.ToHexStringLower(Encoding.ASCII.GetBytes($"/r/{i}"))}", lines[0], StringComparison.Ordinal);
            Assert.Equal([":method: GET", ":scheme: http", $":authority: {server.EndPoint}", $":path: /r/{i}", "user-agent: forwarder-test/1.0", $"x-probe: {value}"], lines[1..]);
        }
    }
}
