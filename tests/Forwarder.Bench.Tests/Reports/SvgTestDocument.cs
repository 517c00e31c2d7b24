using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Forwarder.Bench.Tests.Reports;

/// <summary>A chart parsed back as XML (which proves it well-formed), with its texts and drawn paths.</summary>
internal sealed partial class SvgTestDocument
{
    public static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    public SvgTestDocument(string text)
    {
        Assert.DoesNotContain("NaN", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Infinity", text, StringComparison.Ordinal);
        Assert.DoesNotContain("∞", text, StringComparison.Ordinal);
        Text = text;
        Root = XDocument.Parse(text).Root!;
        Assert.Equal(Svg + "svg", Root.Name);
    }

    public string Text { get; }

    public XElement Root { get; }

    /// <summary>Every text element's content, in document order.</summary>
    public List<string> Texts => [.. Root.Descendants(Svg + "text").Select(e => e.Value.Trim())];

    /// <summary>Where a text is anchored (its translate transform), for the first text equal to <paramref name="text"/>.</summary>
    public (double X, double Y) TextAt(string text)
    {
        var element = Root.Descendants(Svg + "text").First(e => e.Value.Trim() == text);
        var match = TranslatePattern().Match((string)element.Attribute("transform")!);
        return (Number(match.Groups[1].Value), Number(match.Groups[2].Value));
    }

    /// <summary>The vertices of every path stroked in <paramref name="colour"/> (lines and polylines), one list per path.</summary>
    public List<List<(double X, double Y)>> Strokes(string colour) =>
        [.. Root.Descendants(Svg + "path")
            .Where(e => Colour((string?)e.Attribute("stroke")) == Colour(colour))
            .Select(e => Vertices((string)e.Attribute("d")!))];

    /// <summary>Fill colours of filled paths and rects, in document order.</summary>
    public List<string> Fills => [.. Root.Descendants()
        .Where(e => e.Name == Svg + "path" || e.Name == Svg + "rect")
        .Select(e => Colour((string?)e.Attribute("fill")))
        .OfType<string>()];

    public static List<(double X, double Y)> Vertices(string path) =>
        [.. VertexPattern().Matches(path).Select(m => (Number(m.Groups[1].Value), Number(m.Groups[2].Value)))];

    /// <summary>Colours as #RRGGBB in capitals: the writer shortens some (#222, black).</summary>
    private static string? Colour(string? colour) => colour switch
    {
        null => null,
        "black" => "#000000",
        "white" => "#FFFFFF",
        ['#', var r, var g, var b] => string.Concat("#", r, r, g, g, b, b).ToUpperInvariant(),
        _ => colour.ToUpperInvariant(),
    };

    private static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"translate\(([-0-9.e]+)[ ,]+([-0-9.e]+)\)")]
    private static partial Regex TranslatePattern();

    [GeneratedRegex(@"[ML]([-0-9.e]+)[ ,]([-0-9.e]+)")]
    private static partial Regex VertexPattern();
}
