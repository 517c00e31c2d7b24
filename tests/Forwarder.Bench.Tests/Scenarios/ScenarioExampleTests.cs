using System.Diagnostics;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Tests.Scenarios;

/// <summary>examples/ScenarioExample as its user would run it: its own backend, a short run, the reports.</summary>
[Collection(TimingCollection.Name)]
public sealed class ScenarioExampleTests
{
    [Fact]
    public async Task Example_ShortRunAgainstItsOwnBackend_ExitsZeroAndWritesTheReports()
    {
        var folder = Directory.CreateTempSubdirectory("scenario-example-").FullName;
        try
        {
            var (exitCode, output) = await RunAsync("--duration", "2", "--rate", "20", "--reports", folder);

            Assert.True(exitCode == 0, $"exit code {exitCode}:\n{output}");
            Assert.Contains("threshold passed: step 'login' p99 latency < 1000 ms", output, StringComparison.Ordinal);
            var csv = await File.ReadAllLinesAsync(Path.Combine(folder, "report.csv"));
            Assert.Equal(ScenarioReportFiles.CsvHeader, csv[0]);
            Assert.Equal(["(all)", "get item", "login"], csv[1..].Select(line => line.Split(',')[1]));
            Assert.True(File.Exists(Path.Combine(folder, "report.md")));
            Assert.Contains("<svg", await File.ReadAllTextAsync(Path.Combine(folder, "report.html")), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        // The example's build of the same configuration as this test's (the test project builds it).
        var configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;
        var dll = Path.Combine(ForwarderBinary.RepositoryRoot()!, "examples", "ScenarioExample", "bin", configuration, "net10.0", "ScenarioExample.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build the solution first");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", [dll, .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output + await error);
    }
}
