using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Tests;

/// <summary>The forwarder the solution's own build produced (dotnet test builds everything first).</summary>
internal static class ForwarderBuild
{
    public static string Debug()
    {
        var path = Path.Combine(ForwarderBinary.RepositoryRoot()!, "forwarder", "bin", "Debug", "net10.0", "forwarder");
        Assert.True(File.Exists(path), $"{path} is missing: build the solution first (dotnet build Forwarder.sln)");
        return path;
    }
}
