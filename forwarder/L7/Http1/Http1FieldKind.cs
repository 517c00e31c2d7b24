using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>
/// The header fields the proxy acts on itself, told apart once as a head is parsed, so that
/// neither the parser's checks nor the writers compare every name against every special one.
/// </summary>
internal enum Http1FieldKind : byte
{
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    TE,
    Trailer,
    Upgrade,
    Via,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XRequestId,

    /// <summary>HTTP2-Settings: only meaningful with an h2c upgrade, which is never forwarded.</summary>
    Http2Settings,

    /// <summary>
    /// Content_Length or Transfer_Encoding: not framing here, but a server that maps '_' to '-'
    /// (CGI-style) would read them as such, so they are dropped, as Envoy can be told to.
    /// </summary>
    UnderscoredFraming,
}

internal static class Http1FieldKinds
{
    /// <summary>The kind of a field name (ASCII case-insensitive): the length picks the one or two candidates.</summary>
    public static Http1FieldKind Of(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 => Is(name, "te"u8, Http1FieldKind.TE),
        3 => Is(name, "via"u8, Http1FieldKind.Via),
        4 => Is(name, "host"u8, Http1FieldKind.Host),
        6 => Is(name, "expect"u8, Http1FieldKind.Expect),
        7 => Is(name, "upgrade"u8, Http1FieldKind.Upgrade) is var upgrade and not Http1FieldKind.Other ? upgrade : Is(name, "trailer"u8, Http1FieldKind.Trailer),
        10 => Is(name, "connection"u8, Http1FieldKind.Connection) is var connection and not Http1FieldKind.Other ? connection : Is(name, "keep-alive"u8, Http1FieldKind.KeepAlive),
        12 => Is(name, "x-request-id"u8, Http1FieldKind.XRequestId),
        14 => Is(name, "content-length"u8, Http1FieldKind.ContentLength) is var length and not Http1FieldKind.Other ? length
            : Is(name, "http2-settings"u8, Http1FieldKind.Http2Settings) is var settings and not Http1FieldKind.Other ? settings : Is(name, "content_length"u8, Http1FieldKind.UnderscoredFraming),
        15 => Is(name, "x-forwarded-for"u8, Http1FieldKind.XForwardedFor),
        16 => Is(name, "x-forwarded-host"u8, Http1FieldKind.XForwardedHost) is var host and not Http1FieldKind.Other ? host : Is(name, "proxy-connection"u8, Http1FieldKind.ProxyConnection),
        17 => Is(name, "transfer-encoding"u8, Http1FieldKind.TransferEncoding) is var coding and not Http1FieldKind.Other ? coding
            : Is(name, "x-forwarded-proto"u8, Http1FieldKind.XForwardedProto) is var proto and not Http1FieldKind.Other ? proto : Is(name, "transfer_encoding"u8, Http1FieldKind.UnderscoredFraming),
        _ => Http1FieldKind.Other,
    };

    private static Http1FieldKind Is(ReadOnlySpan<byte> name, ReadOnlySpan<byte> lowerCase, Http1FieldKind kind)
        => Ascii.EqualsIgnoreCase(name, lowerCase) ? kind : Http1FieldKind.Other;
}
