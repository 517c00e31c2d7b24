using System.Globalization;
using System.Xml.Linq;

namespace Forwarder.Bench.Tests.Reports;

/// <summary>A chart parsed back as XML (which proves it well-formed), with look-ups by the class the charts give each element.</summary>
internal sealed class SvgTestDocument
{
    public static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    public SvgTestDocument(string text)
    {
        Assert.DoesNotContain("NaN", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Infinity", text, StringComparison.Ordinal);
        Assert.DoesNotContain("∞", text, StringComparison.Ordinal);
        Text = text;
        Root = XDocument.Parse(text).Root!;
    }

    public string Text { get; }

    public XElement Root { get; }

    public List<XElement> ByClass(string cssClass) => Root.Descendants().Where(e => (string?)e.Attribute("class") == cssClass).ToList();

    /// <summary>The visible text of elements of a class, leaving out any tooltip.</summary>
    public List<string> Texts(string cssClass) => ByClass(cssClass).Select(e => string.Concat(e.Nodes().OfType<XText>().Select(t => t.Value))).ToList();

    public static double Number(XElement element, string attribute) =>
        double.Parse((string)element.Attribute(attribute)!, CultureInfo.InvariantCulture);

    public static List<(double X, double Y)> Points(XElement polyline) => ((string)polyline.Attribute("points")!)
        .Split(' ')
        .Select(p => p.Split(','))
        .Select(xy => (double.Parse(xy[0], CultureInfo.InvariantCulture), double.Parse(xy[1], CultureInfo.InvariantCulture)))
        .ToList();
}
