using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Tests;

/// <summary>The forwarder and the YARP peer the solution's own build produced (dotnet test builds everything first).</summary>
internal static class ForwarderBuild
{
    public static string Debug() => Built("forwarder", "forwarder");

    public static string YarpDebug() => Built(Path.Combine("bench", "yarp"), "yarp-peer");

    private static string Built(string project, string binary)
    {
        var path = Path.Combine(ForwarderBinary.RepositoryRoot()!, project, "bin", "Debug", "net10.0", binary);
        Assert.True(File.Exists(path), $"{path} is missing: build the solution first (dotnet build Forwarder.sln)");
        return path;
    }
}
