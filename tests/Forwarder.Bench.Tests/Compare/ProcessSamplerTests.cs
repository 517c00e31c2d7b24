using System.Diagnostics;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Tests.Compare;

public sealed class ProcessSamplerTests
{
    [Fact]
    public void Read_OwnProcess_SeesCpuAndMemory()
    {
        var usage = ProcessSampler.Read(Environment.ProcessId);

        Assert.True(usage.CpuSeconds > 0);
        Assert.InRange(usage.RssBytes, 10L << 20, 64L << 30);
    }

    [Fact]
    public async Task Read_ProcessTree_CountsTheChildrenToo()
    {
        // A shell with two children, the way nginx's master has workers.
        using var shell = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 30 & sleep 30 & wait"]) { UseShellExecute = false })!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Children(shell.Id) < 2 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            var tree = ProcessSampler.Read(shell.Id);
            var alone = ReadSingle(shell.Id);

            Assert.True(tree.RssBytes > alone, $"tree {tree.RssBytes} bytes vs shell alone {alone}");
        }
        finally
        {
            shell.Kill(entireProcessTree: true);
            await shell.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task StopAsync_BusyProcess_ReportsItsCpu()
    {
        await using var sampler = new ProcessSampler(Environment.ProcessId, TimeSpan.FromMilliseconds(20));
        // Spin until this process has had 300 ms of CPU, not for 300 ms of wall time: on a loaded
        // machine (the other test assemblies' benchmarks run beside this one) a spinning thread
        // got 20 ms of CPU in 300 ms.
        using var self = Process.GetCurrentProcess();
        var before = self.TotalProcessorTime;
        var spin = Stopwatch.StartNew();
        do
        {
            Thread.SpinWait(1000);
            self.Refresh();
        }
        while (self.TotalProcessorTime - before < TimeSpan.FromMilliseconds(300) && spin.Elapsed < TimeSpan.FromSeconds(30));

        var (cpu, peak, mean) = await sampler.StopAsync();

        Assert.InRange(cpu, 0.1, 60);
        Assert.True(peak >= mean && mean > 0);
    }

    private static int Children(int pid)
        => Directory.EnumerateDirectories("/proc").Count(d => File.Exists(Path.Combine(d, "stat")) && SafeRead(Path.Combine(d, "stat")) is { } stat && stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1] == pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static long ReadSingle(int pid)
        => long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;

    private static string? SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
