using System.Diagnostics;
using System.Net;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Tests.Compare;

/// <summary>The generated peer configs pass the peers' own checkers (haproxy and nginx are installed by .ci/run).</summary>
public sealed class PeerConfigsTests : IDisposable
{
    private static readonly IPEndPoint Listen = new(IPAddress.Loopback, 18001);
    private static readonly IPEndPoint Backend = new(IPAddress.Loopback, 18002);
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("bench-configs-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Haproxy_ConfigIsValid(bool http)
    {
        var tools = Tools.Find();
        Assert.True(tools.Haproxy is not null, "haproxy is not installed (apt-get install haproxy)");
        var path = Path.Combine(_directory.FullName, "haproxy.cfg");
        File.WriteAllText(path, PeerConfigs.Haproxy(Listen, Backend, 2, http));

        var (exit, output) = Run(tools.Haproxy!, "-c", "-f", path);

        Assert.True(exit == 0, output);
    }

    [Theory]
    [InlineData("stream")]
    [InlineData("http")]
    [InlineData("backend")]
    public void Nginx_ConfigIsValid(string kind)
    {
        var tools = Tools.Find();
        Assert.True(tools.Nginx is not null, "nginx is not installed (apt-get install nginx libnginx-mod-stream)");
        var path = Path.Combine(_directory.FullName, "nginx.conf");
        File.WriteAllText(path, kind switch
        {
            "stream" => PeerConfigs.NginxStream(_directory.FullName, Listen, Backend, 2, tools.NginxStreamModule),
            "http" => PeerConfigs.NginxHttpProxy(_directory.FullName, Listen, Backend, 2),
            _ => PeerConfigs.NginxBackend(_directory.FullName, Listen),
        });

        var (exit, output) = Run(tools.Nginx!, "-t", "-c", path, "-p", _directory.FullName);

        Assert.True(exit == 0, output);
    }

    private static (int Exit, string Output) Run(string file, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false })!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
