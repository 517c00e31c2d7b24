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
    private readonly List<string> _pinned = [];

    public void Dispose()
    {
        foreach (var file in _pinned)
        {
            if (IsRoot)
            {
                _ = Run("chattr", "-i", file);
            }
            else
            {
                _ = Run("chmod", "0755", Path.GetDirectoryName(file)!);
            }
        }

        Directory.Delete(_temp, recursive: true);
        Directory.Delete(_repository, recursive: true);
    }

    [Fact]
    public async Task RemoveOrphans_TakesTheCheckoutsOfGatesThatAreGone_AndKeepsTheLiveOnes()
    {
        var commit = InitRepository();
        var exited = await GoneProcessIdAsync();
        var orphan = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{exited}");
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
        Assert.Contains($"process {exited}", log.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, BaseCheckout.RemoveOrphans(_repository, _temp, log));
    }

    [Fact]
    public async Task RemoveOrphans_LeavesFoldersThatAreNotThisRepositorysWorktrees()
    {
        var commit = InitRepository();
        var gone = await GoneProcessIdAsync();
        // Another user's gate, or one in another pid namespace: same name pattern, not our worktree.
        var foreign = Directory.CreateDirectory(Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{gone}")).FullName;
        File.WriteAllText(Path.Combine(foreign, "theirs"), "keep");
        // A link of that name to our own orphan: followed, it would delete the checkout it points at.
        var target = Path.Combine(_temp, "elsewhere");
        Git("worktree", "add", "--detach", "--force", target, commit);
        var link = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{await GoneProcessIdAsync()}");
        Directory.CreateSymbolicLink(link, target);
        var log = new StringWriter();

        Assert.Equal(0, BaseCheckout.RemoveOrphans(_repository, _temp, log));

        Assert.True(File.Exists(Path.Combine(foreign, "theirs")), "a folder that is no worktree of this repository is left alone");
        Assert.True(File.Exists(Path.Combine(target, "file")), "a link is not followed");
        Assert.Equal(string.Empty, log.ToString());
    }

    [Fact]
    public async Task RemoveOrphans_AFolderThatWillNotGo_IsLoggedAndTheOthersStillGo()
    {
        var commit = InitRepository();
        var gone = await GoneProcessIdAsync();
        var stuck = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{gone}");
        var orphan = Path.Combine(_temp, $"bench-gate-base-{commit[..12]}-{await GoneProcessIdAsync()}");
        Git("worktree", "add", "--detach", "--force", stuck, commit);
        Git("worktree", "add", "--detach", "--force", orphan, commit);
        Pin(Path.Combine(stuck, "file"));
        var log = new StringWriter();

        var removed = BaseCheckout.RemoveOrphans(_repository, _temp, log);

        Assert.Equal(1, removed);
        Assert.False(Directory.Exists(orphan), "the other orphan is still removed");
        Assert.True(File.Exists(Path.Combine(stuck, "file")));
        Assert.Contains($"gate: could not remove {stuck}, left in place:", log.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A git repository with one commit, returned.</summary>
    private string InitRepository()
    {
        Git("init", "-q");
        File.WriteAllText(Path.Combine(_repository, "file"), "base");
        Git("add", "file");
        Git("-c", "user.name=gate", "-c", "user.email=gate@example.invalid", "commit", "-q", "-m", "base");
        return Git("rev-parse", "HEAD").Trim();
    }

    /// <summary>A process id that is gone: a child that has exited.</summary>
    private static async Task<int> GoneProcessIdAsync()
    {
        using var exited = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        await exited.WaitForExitAsync();
        return exited.Id;
    }

    /// <summary>Makes a file undeletable: immutable for root (who may delete any file in a writable folder), its folder read-only otherwise.</summary>
    private void Pin(string file)
    {
        _pinned.Add(file);
        if (IsRoot)
        {
            Assert.True(Run("chattr", "+i", file) == 0, "chattr +i needs CAP_LINUX_IMMUTABLE and a file system with attributes (ext4, xfs)");
        }
        else
        {
            Assert.True(Run("chmod", "0555", Path.GetDirectoryName(file)!) == 0);
        }
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static int Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
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
