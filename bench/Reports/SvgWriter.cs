using System.Globalization;
using System.Text;
using System.Xml;

namespace Forwarder.Bench.Reports;

/// <summary>
/// Writes a standalone SVG 1.1 document element by element: coordinates rounded to 0.01 px in the invariant
/// culture (so the same chart is the same bytes) and all text escaped for XML.
/// </summary>
internal sealed class SvgWriter
{
    public const double FontSize = 12;

    private const string FontFamily = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";

    private readonly StringBuilder _svg = new();

    public SvgWriter(double width, double height, string title)
    {
        _svg.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {N(width)} {N(height)}\" width=\"{N(width)}\" height=\"{N(height)}\" font-family=\"{FontFamily}\" font-size=\"{N(FontSize)}\">\n");
        _svg.Append(CultureInfo.InvariantCulture, $"<title>{Escape(title)}</title>\n");
        Rect(0, 0, width, height, "#ffffff", "background");
    }

    /// <summary>
    /// Roughly how wide <paramref name="text"/> renders, used only to size margins; 0.62 em per character errs wide
    /// even for DejaVu Sans, the broadest common fallback font.
    /// </summary>
    public static double TextWidth(string text, double fontSize = FontSize) => text.Length * fontSize * 0.62;

    public void Rect(double x, double y, double width, double height, string fill, string cssClass, string? stroke = null) =>
        _svg.Append(CultureInfo.InvariantCulture,
            $"<rect class=\"{cssClass}\" x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(Math.Max(0, width))}\" height=\"{N(Math.Max(0, height))}\" fill=\"{fill}\"{(stroke is null ? "" : $" stroke=\"{stroke}\"")}/>\n");

    public void Line(double x1, double y1, double x2, double y2, string stroke, string cssClass, double strokeWidth = 1) =>
        _svg.Append(CultureInfo.InvariantCulture,
            $"<line class=\"{cssClass}\" x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\" stroke=\"{stroke}\" stroke-width=\"{N(strokeWidth)}\"/>\n");

    public void Polyline(IEnumerable<(double X, double Y)> points, string stroke, string cssClass, string label)
    {
        string coordinates = string.Join(' ', points.Select(p => $"{N(p.X)},{N(p.Y)}"));
        _svg.Append(CultureInfo.InvariantCulture,
            $"<polyline class=\"{cssClass}\" points=\"{coordinates}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"><title>{Escape(label)}</title></polyline>\n");
    }

    public void Circle(double x, double y, double radius, string fill, string cssClass) =>
        _svg.Append(CultureInfo.InvariantCulture, $"<circle class=\"{cssClass}\" cx=\"{N(x)}\" cy=\"{N(y)}\" r=\"{N(radius)}\" fill=\"{fill}\"/>\n");

    /// <summary>
    /// Text whose vertical middle sits at <paramref name="y"/> (computed rather than left to dominant-baseline,
    /// which not every renderer supports), optionally rotated about that point.
    /// </summary>
    public void Text(
        double x, double y, string text, string cssClass, string anchor = "start", double fontSize = FontSize,
        string fill = "#222222", bool bold = false, double rotate = 0, string? tooltip = null)
    {
        double baseline = y + fontSize * 0.35;
        _svg.Append(CultureInfo.InvariantCulture, $"<text class=\"{cssClass}\" x=\"{N(x)}\" y=\"{N(baseline)}\" text-anchor=\"{anchor}\" fill=\"{fill}\"");
        if (fontSize != FontSize)
        {
            _svg.Append(CultureInfo.InvariantCulture, $" font-size=\"{N(fontSize)}\"");
        }

        if (bold)
        {
            _svg.Append(" font-weight=\"bold\"");
        }

        if (rotate != 0)
        {
            _svg.Append(CultureInfo.InvariantCulture, $" transform=\"rotate({N(rotate)} {N(x)} {N(y)})\"");
        }

        _svg.Append('>').Append(Escape(text));
        if (tooltip is not null)
        {
            _svg.Append("<title>").Append(Escape(tooltip)).Append("</title>");
        }

        _svg.Append("</text>\n");
    }

    public override string ToString() => _svg + "</svg>\n";

    /// <summary>Escapes markup characters and drops characters XML 1.0 cannot carry at all (e.g. NUL).</summary>
    public static string Escape(string text)
    {
        var escaped = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '&': escaped.Append("&amp;"); break;
                case '<': escaped.Append("&lt;"); break;
                case '>': escaped.Append("&gt;"); break;
                case '"': escaped.Append("&quot;"); break;
                case '\'': escaped.Append("&apos;"); break;
                default:
                    if (XmlConvert.IsXmlChar(c))
                    {
                        escaped.Append(c);
                    }
                    else if (i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], c))
                    {
                        escaped.Append(c).Append(text[++i]);
                    }

                    break;
            }
        }

        return escaped.ToString();
    }

    // Coordinates never need more than 0.01 px; "+ 0" turns a rounded -0 into 0 so it doesn't print as "-0".
    private static string N(double value) => (Math.Round(value, 2) + 0).ToString("0.##", CultureInfo.InvariantCulture);
}
