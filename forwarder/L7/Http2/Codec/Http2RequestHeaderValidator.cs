using System.Buffers;
using Forwarder.L7.Http2.Hpack;

namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// Sits between <see cref="HpackDecoder"/> and whatever takes a request's fields, and applies
/// RFC 9113 8.2-8.3 to them: lowercase names without separators, values without NUL, CR, LF or
/// surrounding whitespace, pseudo-headers known, single and first (none in trailers), no
/// connection-specific fields (TE only as "trailers"), and the pseudo-headers a request needs.
/// The first broken rule makes the request malformed: a stream error of type PROTOCOL_ERROR. It
/// is recorded, not thrown, because the block must still be decoded to the end to keep the HPACK
/// table in step; the fields after it are not passed on.
/// </summary>
internal sealed class Http2RequestHeaderValidator<TInner>(TInner inner) : IHpackSink
    where TInner : IHpackSink
{
    [Flags]
    private enum Pseudo
    {
        None = 0,
        Method = 1,
        Scheme = 2,
        Authority = 4,
        Path = 8,
        Protocol = 16,
    }

    /// <summary>
    /// What a field value may not hold: the controls but tab, and DEL. obs-text (0x80-0xFF) is let
    /// through as opaque (RFC 9110 5.5), as the HTTP/1 front, HAProxy and nginx do.
    /// </summary>
    private static readonly SearchValues<byte> NotInFieldValue = SearchValues.Create(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127]);

    private Pseudo _seen;
    private bool _regularSeen;
    private bool _trailers;
    private bool _connect;

    /// <summary>Why the request is malformed, or null.</summary>
    public string? Malformed { get; private set; }

    /// <summary>
    /// A regular field's value has a control character other than tab, or DEL (RFC 9110 5.5, which
    /// HTTP/2's framing rules let through but NUL, CR and LF): not malformed HTTP/2, but a request
    /// the proxy answers 400, as the HTTP/1 front does.
    /// </summary>
    public bool InvalidValue { get; private set; }

    public TInner Inner => inner;

    /// <summary>Starts a header block: the request's headers, or (<paramref name="trailers"/>) its trailers.</summary>
    public void Begin(bool trailers)
    {
        _seen = Pseudo.None;
        _regularSeen = false;
        _trailers = trailers;
        _connect = false;
        Malformed = null;
        InvalidValue = false;
    }

    public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (Malformed is not null)
        {
            return;
        }

        Malformed = Check(name, value);
        if (Malformed is null)
        {
            inner.OnHeader(name, value);
        }
    }

    /// <summary>Ends the block: checks what must be there. Null if the request is well formed.</summary>
    public string? End()
    {
        if (Malformed is not null || _trailers)
        {
            return Malformed;
        }

        if ((_seen & Pseudo.Method) == 0)
        {
            return Malformed = "no :method";
        }

        if (_connect && (_seen & Pseudo.Protocol) == 0)
        {
            // RFC 9113 8.5: a plain CONNECT names only where to connect.
            return Malformed = (_seen & Pseudo.Authority) == 0 ? "CONNECT without :authority"
                : (_seen & (Pseudo.Scheme | Pseudo.Path)) != 0 ? "CONNECT with :scheme or :path"
                : null;
        }

        if ((_seen & Pseudo.Protocol) != 0 && !_connect)
        {
            return Malformed = ":protocol on a request that is not CONNECT";
        }

        return Malformed = (_seen & (Pseudo.Scheme | Pseudo.Path)) != (Pseudo.Scheme | Pseudo.Path) ? "no :scheme or :path" : null;
    }

    private static bool IsConnectionSpecific(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("connection"u8) || name.SequenceEqual("proxy-connection"u8) || name.SequenceEqual("keep-alive"u8)
        || name.SequenceEqual("transfer-encoding"u8) || name.SequenceEqual("upgrade"u8);

    private static bool ValidName(ReadOnlySpan<byte> name)
    {
        foreach (var b in name)
        {
            // RFC 9110 5.6.2 token characters, lowercase only (RFC 9113 8.2.1).
            if (b is <= 0x20 or >= 0x7f or (byte)'(' or (byte)')' or (byte)',' or (byte)'/' or (byte)';' or (byte)'<' or (byte)'=' or (byte)'>'
                or (byte)'?' or (byte)'@' or (byte)'[' or (byte)'\\' or (byte)']' or (byte)'{' or (byte)'}' or (byte)'"' or (byte)':'
                or (>= (byte)'A' and <= (byte)'Z'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ValidValue(ReadOnlySpan<byte> value) =>
        value.IndexOfAny((byte)0, (byte)'\r', (byte)'\n') < 0
        && (value.IsEmpty || (value[0] is not ((byte)' ' or (byte)'\t') && value[^1] is not ((byte)' ' or (byte)'\t')));

    private string? Check(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (!ValidValue(value))
        {
            return "a field value with NUL, CR, LF or surrounding whitespace";
        }

        if (!name.IsEmpty && name[0] == (byte)':')
        {
            return CheckPseudo(name, value);
        }

        _regularSeen = true;
        if (name.IsEmpty || !ValidName(name))
        {
            return "a field name that is empty, not lowercase, or not a token";
        }

        if (IsConnectionSpecific(name))
        {
            return "a connection-specific field";
        }

        // NUL, CR and LF were refused above as malformed; obs-text is forwarded as it came.
        InvalidValue |= value.ContainsAny(NotInFieldValue);

        return name.SequenceEqual("te"u8) && !value.SequenceEqual("trailers"u8) ? "TE other than \"trailers\"" : null;
    }

    private string? CheckPseudo(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (_trailers)
        {
            return "a pseudo-header in trailers";
        }

        if (_regularSeen)
        {
            return "a pseudo-header after a regular field";
        }

        var pseudo = name switch
        {
            _ when name.SequenceEqual(":method"u8) => Pseudo.Method,
            _ when name.SequenceEqual(":scheme"u8) => Pseudo.Scheme,
            _ when name.SequenceEqual(":authority"u8) => Pseudo.Authority,
            _ when name.SequenceEqual(":path"u8) => Pseudo.Path,
            _ when name.SequenceEqual(":protocol"u8) => Pseudo.Protocol,
            _ => Pseudo.None,
        };
        if (pseudo == Pseudo.None)
        {
            return "an unknown pseudo-header";
        }

        if ((_seen & pseudo) != 0)
        {
            return "a repeated pseudo-header";
        }

        _seen |= pseudo;
        if (pseudo == Pseudo.Method)
        {
            _connect = value.SequenceEqual("CONNECT"u8);
        }

        return pseudo == Pseudo.Path && value.IsEmpty ? "an empty :path" : null;
    }
}
