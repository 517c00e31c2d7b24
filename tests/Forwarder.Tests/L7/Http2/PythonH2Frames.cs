namespace Forwarder.Tests.L7.Http2;

/// <summary>
/// The start of a python3 script that writes raw HTTP/2 frames (hyperframe, hpack) and reads
/// the peer's: the imports, and <c>frames(s)</c>, a generator of every frame the peer sends on
/// socket <c>s</c>, in order, acknowledging its SETTINGS as they come; it ends when the peer closes.
/// </summary>
internal static class PythonH2Frames
{
    public const string Reader = """
import socket, sys, hpack
from hyperframe.frame import *
def frames(s):
    buf = b''
    while True:
        chunk = s.recv(65536)
        if not chunk: return
        buf += chunk
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length: break
            f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
            if isinstance(f, SettingsFrame) and 'ACK' not in f.flags: s.sendall(SettingsFrame(0, flags=['ACK']).serialize())
            yield f

""";
}
