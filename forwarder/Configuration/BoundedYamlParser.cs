using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Forwarder.Configuration;

/// <summary>
/// YamlDotNet's event parser with the limits a config file must keep, checked as the events pass
/// so the tree is never built past them: YamlStream builds nested collections by recursion, and a
/// file nested some thousands deep overflows the stack, which no handler can catch and which
/// takes the running proxy down with it on a reload. A second document is refused too, rather
/// than silently ignored.
/// </summary>
internal sealed class BoundedYamlParser(string yaml, string file) : IParser
{
    /// <summary>Deeper than any real config (they nest to about 8); low enough for any stack.</summary>
    public const int MaxDepth = 64;

    private readonly Parser _parser = new(new StringReader(yaml));
    private int _depth;
    private int _documents;

    public ParsingEvent? Current => _parser.Current;

    public bool MoveNext()
    {
        if (!_parser.MoveNext())
        {
            return false;
        }

        switch (_parser.Current)
        {
            case MappingStart or SequenceStart when ++_depth > MaxDepth:
                throw Refused(_parser.Current.Start, $"collections nest deeper than {MaxDepth} levels here; a config needs far fewer (is this a config file?)");
            case MappingEnd or SequenceEnd:
                _depth--;
                break;
            case DocumentStart when ++_documents > 1:
                throw Refused(_parser.Current.Start, "a second YAML document starts here ('---'); a config file holds exactly one");
        }

        return true;
    }

    private ConfigException Refused(Mark at, string message)
        => new([new ConfigError(file, (int)at.Line, (int)at.Column, string.Empty, message)]);
}
