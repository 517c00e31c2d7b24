namespace Forwarder.L7.Http2.Codec;

/// <summary>The SETTINGS parameters of RFC 9113 6.5.2 (and 8441's extended CONNECT).</summary>
internal enum Http2SettingId : ushort
{
    HeaderTableSize = 0x1,
    EnablePush = 0x2,
    MaxConcurrentStreams = 0x3,
    InitialWindowSize = 0x4,
    MaxFrameSize = 0x5,
    MaxHeaderListSize = 0x6,
    EnableConnectProtocol = 0x8,
}

/// <summary>One parameter of a SETTINGS frame.</summary>
internal readonly record struct Http2Setting(Http2SettingId Id, uint Value)
{
    public const int Length = 6;
}
