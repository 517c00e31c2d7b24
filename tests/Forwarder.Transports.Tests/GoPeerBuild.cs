using System.Diagnostics;

namespace Forwarder.Transports.Tests;

/// <summary>
/// Builds a Go test peer from this project's sources against Debian's Go packages
/// (GOPATH=/usr/share/gocode, no modules), once per test run, into a folder of this process's own.
/// </summary>
internal static class GoPeerBuild
{
    /// <param name="folder">Folder of the peer's source, below this test project.</param>
    /// <param name="file">The Go file to build.</param>
    /// <param name="name">The binary's name, also naming its temporary folder.</param>
    /// <param name="packages">Debian packages the build needs, named when it fails.</param>
    /// <returns>The built binary's path.</returns>
    public static async Task<string> BuildAsync(string[] folder, string file, string name, string packages)
    {
        var source = Path.Combine([RepositoryRoot(), "tests", "Forwarder.Transports.Tests", .. folder]);
        var output = Path.Combine(Path.GetTempPath(), $"forwarder-{name}-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        var binary = Path.Combine(output, name);
        var build = new ProcessStartInfo("go", ["build", "-o", binary, file])
        {
            WorkingDirectory = source,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        build.Environment["GO111MODULE"] = "off";
        build.Environment["GOPATH"] = "/usr/share/gocode";
        build.Environment["GOCACHE"] = Path.Combine(output, "cache");
        build.Environment["GOFLAGS"] = string.Empty;
        using var go = Process.Start(build)!;
        var stdout = go.StandardOutput.ReadToEndAsync();
        var stderr = go.StandardError.ReadToEndAsync();
        await go.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(go.ExitCode == 0, $"go build failed in {source} (needs {packages}): {await stdout}{await stderr}");
        return binary;
    }

    /// <summary>The repository's root: the folder above the test binaries that holds Forwarder.sln.</summary>
    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Forwarder.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (Forwarder.sln) was not found above the test binaries.");
    }
}
