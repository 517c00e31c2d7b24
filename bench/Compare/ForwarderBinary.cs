using System.Diagnostics;

namespace Forwarder.Bench.Compare;

/// <summary>Finds the programs to benchmark (the forwarder, the YARP peer): the path given, or the repository's build of a configuration (built first if missing).</summary>
internal static class ForwarderBinary
{
    /// <param name="configuration">Release, or DelayInjection for the build that carries an injected delay.</param>
    /// <param name="rebuild">Build even when a binary exists, so it carries the current source.</param>
    public static string Locate(string? given, TextWriter log, string configuration = "Release", bool rebuild = false)
    {
        if (given is not null)
        {
            return File.Exists(given) ? Path.GetFullPath(given) : throw new InvalidOperationException($"--forwarder: no file at {given}.");
        }

        return Build("the forwarder", "--forwarder", Path.Combine("forwarder", "Forwarder.csproj"), "forwarder", configuration, rebuild, log);
    }

    /// <summary>The YARP peer (bench/yarp): the path given, or its Release build (built first if missing).</summary>
    public static string LocateYarp(string? given, TextWriter log)
    {
        if (given is not null)
        {
            return File.Exists(given) ? Path.GetFullPath(given) : throw new InvalidOperationException($"--yarp: no file at {given}.");
        }

        return Build("the YARP peer", "--yarp", Path.Combine("bench", "yarp", "YarpPeer.csproj"), "yarp-peer", "Release", rebuild: false, log);
    }

    private static string Build(string what, string option, string project, string binaryName, string configuration, bool rebuild, TextWriter log)
    {
        var root = RepositoryRoot() ?? throw new InvalidOperationException($"Cannot find Forwarder.sln above the current directory or the bench binary; pass {option} PATH.");
        var binary = Path.Combine(root, Path.GetDirectoryName(project)!, "bin", configuration, "net10.0", binaryName);
        if (rebuild || !File.Exists(binary))
        {
            log.WriteLine($"building {what} ({configuration}) at {root}");
            using var build = Process.Start(new ProcessStartInfo("dotnet", ["build", "-c", configuration, Path.Combine(root, project), "-nologo", "-v", "q"]) { UseShellExecute = false })
                ?? throw new InvalidOperationException("Could not start dotnet build.");
            build.WaitForExit();
            if (build.ExitCode != 0 || !File.Exists(binary))
            {
                throw new InvalidOperationException($"Building {what} failed (exit {build.ExitCode}).");
            }
        }

        return binary;
    }

    public static string? RepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "Forwarder.sln")))
                {
                    return directory.FullName;
                }
            }
        }

        return null;
    }
}
