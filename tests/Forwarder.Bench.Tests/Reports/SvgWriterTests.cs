using Forwarder.Bench.Reports;

namespace Forwarder.Bench.Tests.Reports;

public sealed class SvgWriterTests
{
    [Theory]
    [InlineData("a<b&c", "a&lt;b&amp;c")]
    [InlineData("\"x\" 'y' >", "&quot;x&quot; &apos;y&apos; &gt;")]
    [InlineData("nul\0bell\a", "nulbell")]
    [InlineData("io_uring 🚀 µs", "io_uring 🚀 µs")]
    public void Escape_Text_IsSafeInsideXml(string text, string expected) => Assert.Equal(expected, SvgWriter.Escape(text));

    [Fact]
    public void Escape_LoneSurrogate_IsDropped() =>
        // Built at run time: a lone surrogate in an attribute argument would not survive compilation into metadata.
        Assert.Equal("lone  surrogate", SvgWriter.Escape("lone " + (char)0xD800 + " surrogate"));

    [Fact]
    public void ToString_NegativeZeroCoordinate_WritesZero()
    {
        var svg = new SvgWriter(10, 10, "t");
        svg.Line(-0.001, 0, 1, 1, "#000000", "l");

        Assert.Contains("x1=\"0\"", svg.ToString(), StringComparison.Ordinal);
    }
}
