using System.Net;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

/// <summary>
/// What the running executable holds while idle. OpenSSL (libssl and libcrypto, some 4 MB
/// resident) is mapped only when the config needs it: TLS, or HTTP listeners (the WebSocket
/// handshake's hash), which load it at start rather than with a first use that may come at the
/// descriptor limit. Files are watched only in the config file's directory.
/// </summary>
public sealed class IdleFootprintTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-openssl-").FullName;

    [Fact]
    public async Task PlainL4Config_ServedScrapedAndReloaded_NeverLoadsOpenSsl()
    {
        await using var echo = TcpTestServer.Echo();
        var path = Path.Combine(_directory, "l4.yaml");
        await File.WriteAllTextAsync(path, L4Config(echo, "1m"));
        using var forwarder = ForwarderProcess.Start("--config", path);
        var front = new IPEndPoint(IPAddress.Loopback, await forwarder.ListenerPortAsync("front"));
        using var admin = new HttpClient { BaseAddress = await forwarder.AdminAddressAsync() };
        await WaitUntilReadyAsync(admin);
        await forwarder.WaitForOutputAsync("Start-up memory released");

        using (var client = await SocketClient.ConnectAsync(front))
        {
            await SocketClient.AssertEchoAsync(client, "through the L4 listener");
        }

        Assert.Contains("forwarder_", await admin.GetStringAsync("/metrics"), StringComparison.Ordinal);
        Assert.Contains("front", await admin.GetStringAsync("/config"), StringComparison.Ordinal);

        // A reload digests the file again to tell an edit from a touch.
        await File.WriteAllTextAsync(path, L4Config(echo, "2m"));
        await forwarder.WaitForOutputAsync("Reloaded ");

        var libraries = MappedOpenSsl(forwarder.Id);
        Assert.True(libraries.Length == 0, $"OpenSSL mapped without TLS or HTTP configured: {string.Join(", ", libraries)}");
    }

    [Fact]
    public async Task AdminEndpoint_WatchesNoDirectoryButTheConfigFiles()
    {
        // The working directory (the test's output directory) has subdirectories: a watch on its
        // tree would take one inotify watch each.
        Assert.NotEmpty(Directory.GetDirectories(Environment.CurrentDirectory));
        await using var echo = TcpTestServer.Echo();
        var path = Path.Combine(_directory, "watch.yaml");
        await File.WriteAllTextAsync(path, L4Config(echo, "1m"));
        using var forwarder = ForwarderProcess.Start("--config", path);
        using var admin = new HttpClient { BaseAddress = await forwarder.AdminAddressAsync() };
        await WaitUntilReadyAsync(admin);
        await forwarder.WaitForOutputAsync("Start-up memory released");

        // The config file's directory, and the directory a symbolic link points into (none here).
        Assert.Equal(1, InotifyWatches(forwarder.Id));
    }

    [Fact]
    public async Task HttpListenerConfig_LoadsOpenSslAtStart()
    {
        await using var echo = TcpTestServer.Echo();
        var path = Path.Combine(_directory, "http.yaml");
        await File.WriteAllTextAsync(path, $"""
            admin: {"{"} listen: '127.0.0.1:0' {"}"}
            listeners:
              - {"{"} name: web, listen: '127.0.0.1:0', protocol: http, routes: [ {"{"} service: back {"}"} ] {"}"}
            services:
              back:
                endpoints: [ {"{"} address: '{echo.Address}' {"}"} ]
            """);
        using var forwarder = ForwarderProcess.Start("--config", path);
        using var admin = new HttpClient { BaseAddress = await forwarder.AdminAddressAsync() };
        await WaitUntilReadyAsync(admin);

        Assert.Contains(MappedOpenSsl(forwarder.Id), library => library.Contains("libcrypto", StringComparison.Ordinal));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string L4Config(TcpTestServer echo, string idleTimeout) => $"""
        admin: {"{"} listen: '127.0.0.1:0' {"}"}
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
        services:
          back:
            idleTimeout: {idleTimeout}
            endpoints: [ {"{"} address: '{echo.Address}' {"}"} ]
        """;

    /// <summary>Start-up ends with /readyz 200 (listeners bind before the warm-up ends).</summary>
    private static Task WaitUntilReadyAsync(HttpClient admin) => Eventually.TrueAsync(
        async () =>
        {
            using var ready = await admin.GetAsync("/readyz");
            return ready.StatusCode == HttpStatusCode.OK;
        },
        "/readyz reports ready");

    /// <summary>The inotify watches the process holds, over all its inotify descriptors.</summary>
    private static int InotifyWatches(int pid) => new DirectoryInfo($"/proc/{pid}/fd").EnumerateFiles()
        .Where(fd => fd.LinkTarget == "anon_inode:inotify")
        .Sum(fd => File.ReadLines($"/proc/{pid}/fdinfo/{fd.Name}").Count(line => line.StartsWith("inotify wd:", StringComparison.Ordinal)));

    /// <summary>The OpenSSL libraries in the process's memory map.</summary>
    private static string[] MappedOpenSsl(int pid) => [.. File.ReadLines($"/proc/{pid}/maps")
        .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(fields => fields.Length >= 6 && (fields[5].Contains("libssl", StringComparison.Ordinal) || fields[5].Contains("libcrypto", StringComparison.Ordinal)))
        .Select(fields => fields[5])
        .Distinct(StringComparer.Ordinal)];
}
