using System.Text;
using Forwarder.LoadBalancing.Hashing;

namespace Forwarder.LoadBalancing.Tests.Hashing;

public sealed class XxHash64Tests
{
    // Published values (xxHash's reference implementation, `xxhsum -H64`), seed 0; together they
    // cover the empty input, the byte, 4-byte and 8-byte tails, and the 32-byte stripe loop.
    [Theory]
    [InlineData("", 0xEF46DB3751D8E999UL)]
    [InlineData("a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData("abc", 0x44BC2CF5AD770999UL)]
    [InlineData("Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1UL)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789", 0xA76190C3ACF08A1CUL)]
    public void Hash_Text_MatchesReference(string text, ulong expected)
        => Assert.Equal(expected, XxHash64.Hash(Encoding.ASCII.GetBytes(text)));

    [Theory]
    [InlineData(37, 0xD93FA2DFEE5C24C9UL)]
    [InlineData(1000, 0xF306F04AA88B54D3UL)]
    public void Hash_BytePattern_MatchesReference(int length, ulong expected)
    {
        var data = Enumerable.Range(0, length).Select(i => (byte)(i % 251)).ToArray();

        Assert.Equal(expected, XxHash64.Hash(data));
    }

    [Fact]
    public void Hash_Seed_ChangesTheValue()
        => Assert.NotEqual(XxHash64.Hash("abc"u8), XxHash64.Hash("abc"u8, seed: 1));
}
