namespace Forwarder.Metrics;

/// <summary>Why the proxy closed an HTTP/2 client connection with a GOAWAY of its own.</summary>
internal enum Http2GoAwayReason
{
    /// <summary>No complete request header block within the listener's headerTimeout (NO_ERROR).</summary>
    HeaderTimeout,

    /// <summary>Too many PINGs (ENHANCE_YOUR_CALM).</summary>
    PingFlood,

    /// <summary>Too many SETTINGS frames (ENHANCE_YOUR_CALM).</summary>
    SettingsFlood,

    /// <summary>Too many streams reset by the client, CVE-2023-44487 (ENHANCE_YOUR_CALM).</summary>
    RapidReset,

    /// <summary>No request in flight for the listener's keepAliveTimeout (NO_ERROR).</summary>
    Idle,
}

internal static class Http2GoAwayReasons
{
    /// <summary>The reason's label in the metrics.</summary>
    public static string Label(Http2GoAwayReason reason) => reason switch
    {
        Http2GoAwayReason.HeaderTimeout => "header_timeout",
        Http2GoAwayReason.PingFlood => "ping_flood",
        Http2GoAwayReason.SettingsFlood => "settings_flood",
        Http2GoAwayReason.RapidReset => "rapid_reset",
        _ => "idle",
    };
}
