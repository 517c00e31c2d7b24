using System.Net;
using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// The I/O thread count the real executable runs with: one thread below four cores unless the
/// config names a count, one per core from four on. .NET takes its core count from
/// DOTNET_PROCESSOR_COUNT when set, as it would from a container's CPU quota. The default single
/// thread on more than one core comes with a spare that only takes pairs on an overloaded node.
/// </summary>
public sealed class IoThreadDefaultsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-threads-").FullName;

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(3, 1)]
    [InlineData(4, 4)]
    [InlineData(16, 16)]
    public void Default_DependsOnTheCores(int cores, int threads)
        => Assert.Equal(threads, SocketEngine.DefaultIoThreads(cores));

    [Theory]
    [InlineData(2, null, 1, true)]
    [InlineData(4, null, 4, false)]
    [InlineData(2, 1, 1, false)]
    [InlineData(2, 3, 3, false)]
    public async Task Executable_StartsThatManySplicerThreads(int cores, int? configured, int expected, bool spare)
    {
        await using var echo = TcpTestServer.Echo();
        var path = Path.Combine(_directory, "forwarder.yaml");
        var tcp = configured is { } count ? $"tcp:\n  ioThreads: {count}\n" : "";
        await File.WriteAllTextAsync(path, $"""
            {tcp}listeners:
              - name: front
                listen: 127.0.0.1:0
                protocol: tcp
                service: echo
            services:
              echo:
                endpoints:
                  - address: {echo.EndPoint}
            """);
        using var forwarder = ForwarderProcess.StartWithEnvironment(
            new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = cores.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            "--config", path);
        var port = await forwarder.ListenerPortAsync("front");
        using (var client = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)))
        {
            await SocketClient.AssertEchoAsync(client, "through a splicer thread");
        }

        IReadOnlyList<string> splicers = [];
        var all = expected + (spare ? 1 : 0);
        await Eventually.TrueAsync(
            () => (splicers = [.. forwarder.ThreadNames().Where(name => name.StartsWith("splicer-", StringComparison.Ordinal))]).Count >= all,
            $"{all} splicer threads start");
        Assert.Equal(expected, splicers.Count(name => name != "splicer-spare"));
        Assert.Equal(spare, splicers.Contains("splicer-spare"));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
