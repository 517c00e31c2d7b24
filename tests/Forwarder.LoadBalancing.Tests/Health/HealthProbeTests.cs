using System.Text;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

public sealed class HealthProbeTests
{
    [Theory]
    [InlineData("HTTP/1.1 200 OK", true, null)]
    [InlineData("HTTP/1.0 204", true, null)]
    [InlineData("HTTP/1.1 299 Whatever", true, null)]
    [InlineData("HTTP/1.1 301 Moved", false, "status 301")]
    [InlineData("HTTP/1.1 503 Service Unavailable", false, "status 503")]
    [InlineData("HTTP/1.1 1999 OK", false, "not an HTTP/1.x response")]
    [InlineData("SSH-2.0-OpenSSH_9.2", false, "not an HTTP/1.x response")]
    [InlineData("HTTP/2 200", false, "not an HTTP/1.x response")]
    public void ParseStatusLine_Classifies(string line, bool passed, string? failure)
    {
        var result = HealthProbe.ParseStatusLine(Encoding.ASCII.GetBytes(line));
        Assert.Equal(new HealthProbeResult(passed, failure), result);
    }
}
