using System.Diagnostics;
using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

/// <summary>
/// Base checkouts a killed gate left behind: the next gate removes them, worktree record and
/// all, and leaves those of gates still running. A repository and temp folder of the test's own,
/// so no other gate on the machine is touched.
/// </summary>
public sealed class BaseCheckoutTests : IDisposable
{
    private readonly string _repository = Directory.CreateTempSubdirectory("gate-repo-").FullName;
    private readonly string _temp = Directory.CreateTempSubdirectory("gate-temp-").FullName;

    public void Dispose()
    {
        Directory.Delete(_temp, recursive: true);
        Directory.Delete(_repository, recursive: true);
    }

    [Fact]
    public async Task RemoveOrphans_TakesTheCheckoutsOfGatesThatAreGone_AndKeepsTheLiveOnes()
    {
        Git("init", "-q");
        File.WriteAllText(Path.Combine(_repository, "file"), "base");
        Git("add", "file");
        Git("-c", "user.name=gate", "-c", "user.email=gate@example.invalid", "commit", "-q", "-m", "base");
        var commit = Git("rev-parse", "HEAD").Trim();

        // A process id that is gone: a child that has exited.
        using var exited = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        await exited.WaitForExitAsync();
        var orphan = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{exited.Id}");
        var live = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{Environment.ProcessId}");
        Git("worktree", "add", "--detach", "--force", orphan, commit);
        Git("worktree", "add", "--detach", "--force", live, commit);
        var log = new StringWriter();

        Assert.Equal(1, BaseCheckout.RemoveOrphans(_repository, _temp, log));

        Assert.False(Directory.Exists(orphan), "the dead gate's checkout is gone");
        Assert.True(File.Exists(Path.Combine(live, "file")), "the live gate's checkout is untouched");
        var worktrees = Git("worktree", "list", "--porcelain");
        Assert.DoesNotContain(orphan, worktrees, StringComparison.Ordinal);
        Assert.Contains(live, worktrees, StringComparison.Ordinal);
        Assert.Contains($"process {exited.Id}", log.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, BaseCheckout.RemoveOrphans(_repository, _temp, log));
    }

    private string Git(params string[] arguments)
    {
        var start = new ProcessStartInfo("git") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in (string[])["-C", _repository, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        using var git = Process.Start(start)!;
        var error = git.StandardError.ReadToEndAsync();
        var output = git.StandardOutput.ReadToEnd();
        git.WaitForExit();
        Assert.True(git.ExitCode == 0, $"git {string.Join(' ', arguments)}: {error.Result}");
        return output;
    }
}
