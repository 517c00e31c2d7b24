using Forwarder.L7.Http2.Codec;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.L7.Http2;

/// <summary>
/// Counts the frames a flooding HTTP/2 client sends, per connection and per one-second window:
/// more than <see cref="PerSecond"/> PINGs, SETTINGS, or stream resets (RST_STREAM from the
/// client, the rapid reset of CVE-2023-44487) in a window is a flood. Each of these costs the
/// proxy work (an ACK to write, a request started upstream and cancelled) and a legitimate client
/// sends a handful a second; the bound is of the order Envoy and nginx use, well above that.
/// </summary>
internal sealed class Http2FloodLimits(ConnectionTracker clock)
{
    public const int PerSecond = 100;

    private static readonly TimeSpan Window = TimeSpan.FromSeconds(1);

    private long _windowStart = clock.Now;
    private int _pings;
    private int _settings;
    private int _resets;

    /// <summary>Counts the frame; the flood it proves, or null.</summary>
    public Http2GoAwayReason? Count(in Http2FrameHeader frame)
    {
        ref var count = ref _pings;
        Http2GoAwayReason reason;
        switch (frame.Type)
        {
            case Http2Frames.Ping when (frame.Flags & Http2Frames.Ack) == 0:
                reason = Http2GoAwayReason.PingFlood;
                break;
            case Http2Frames.Settings when (frame.Flags & Http2Frames.Ack) == 0:
                count = ref _settings;
                reason = Http2GoAwayReason.SettingsFlood;
                break;
            case Http2Frames.RstStream:
                count = ref _resets;
                reason = Http2GoAwayReason.RapidReset;
                break;
            default:
                return null;
        }

        if (clock.Since(_windowStart) >= Window)
        {
            _windowStart = clock.Now;
            _pings = _settings = _resets = 0;
        }

        return ++count > PerSecond ? reason : null;
    }
}
