using System.Diagnostics;

namespace Forwarder.Bench.Gate;

/// <summary>
/// The base the gate compares with: a commit checked out in a temporary git worktree and its
/// forwarder built in Release there. Disposing removes the worktree and its build.
/// </summary>
internal sealed class BaseCheckout : IDisposable
{
    /// <summary>The name of a base checkout in the temp folder, before its commit and the gate's process id.</summary>
    private const string Prefix = "bench-gate-base-";

    private readonly string _root;

    private BaseCheckout(string root, string directory, string commit)
    {
        _root = root;
        Directory = directory;
        Commit = commit;
    }

    public string Directory { get; }

    public string Commit { get; }

    public string ForwarderPath => Path.Combine(Directory, "forwarder", "bin", "Release", "net10.0", "forwarder");

    /// <summary>
    /// The base when none is named: the merge-base with origin/main when this branch has commits
    /// of its own (a change under review), else HEAD~1 (main itself: its last commit is the change).
    /// </summary>
    public static string DefaultReference(string root)
    {
        var head = Git(root, "rev-parse", "HEAD");
        var mergeBase = Git(root, "merge-base", "HEAD", "origin/main");
        return mergeBase.ExitCode == 0 && head.ExitCode == 0 && mergeBase.Output.Trim() != head.Output.Trim() ? mergeBase.Output.Trim() : "HEAD~1";
    }

    /// <summary>The commit a reference names, or null when it names none.</summary>
    public static string? Resolve(string root, string reference)
    {
        var resolved = Git(root, "rev-parse", "--verify", "--quiet", reference + "^{commit}");
        return resolved.ExitCode == 0 ? resolved.Output.Trim() : null;
    }

    /// <exception cref="GateSetupException">The reference names no commit, or its forwarder does not build.</exception>
    public static BaseCheckout Create(string root, string reference, TextWriter log)
    {
        var commit = Resolve(root, reference)
            ?? throw new GateSetupException($"the base {reference} is not a commit of {root} (a shallow clone has no HEAD~1: fetch more history, or name the base with --base).");
        RemoveOrphans(root, Path.GetTempPath(), log);
        var directory = Path.Combine(Path.GetTempPath(), $"{Prefix}{commit[..12]}-{Environment.ProcessId}");
        var added = Git(root, "worktree", "add", "--detach", "--force", directory, commit);
        if (added.ExitCode != 0)
        {
            throw new GateSetupException($"could not check out the base {reference} ({commit[..12]}): {Tail(added.Output)}");
        }

        var checkout = new BaseCheckout(root, directory, commit);
        try
        {
            log.WriteLine($"gate: building the base {reference} ({commit[..12]}) in {directory}");
            var project = Path.Combine(directory, "forwarder", "Forwarder.csproj");
            var build = File.Exists(project) ? Run("dotnet", directory, "build", "-c", "Release", project, "-nologo", "-v", "q", "--disable-build-servers") : (ExitCode: -1, Output: "it has no forwarder/Forwarder.csproj");
            if (build.ExitCode != 0 || !File.Exists(checkout.ForwarderPath))
            {
                throw new GateSetupException($"the base {reference} ({commit[..12]}) does not build: {Tail(build.Output)}");
            }

            return checkout;
        }
        catch
        {
            checkout.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Removes the base checkouts in <paramref name="temp"/> whose gate process is gone (killed, so
    /// its Dispose never ran): a later gate or test would otherwise find them, and they hold a
    /// whole Release build each. Only this repository's worktrees are touched: the temp folder is
    /// shared with other users and other pid namespaces, where a folder of this name whose process
    /// id is not in our /proc may belong to a live gate. A live gate's checkout, this one's
    /// included, is left alone, and a folder that will not go is logged and left (never fatal).
    /// </summary>
    /// <returns>How many were removed.</returns>
    internal static int RemoveOrphans(string root, string temp, TextWriter log)
    {
        var removed = 0;
        HashSet<string>? worktrees = null;
        foreach (var directory in System.IO.Directory.EnumerateDirectories(temp, Prefix + "*"))
        {
            var name = Path.GetFileName(directory);
            if (!int.TryParse(name.AsSpan(name.LastIndexOf('-') + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid) || IsAlive(pid))
            {
                continue;
            }

            worktrees ??= Worktrees(root);
            if (new DirectoryInfo(directory).LinkTarget is not null || !worktrees.Contains(Path.GetFullPath(directory)))
            {
                continue;
            }

            try
            {
                log.WriteLine($"gate: removing {directory}, the base checkout of a gate that is gone (process {pid})");
                RemoveWorktree(root, directory);
                removed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another gate removing the same orphan, or a file we may not delete: the gate can run without this cleanup.
                log.WriteLine($"gate: could not remove {directory}, left in place: {e.Message}");
            }
        }

        if (worktrees is not null)
        {
            _ = Git(root, "worktree", "prune");
        }

        return removed;
    }

    public void Dispose()
    {
        RemoveWorktree(_root, Directory);
        _ = Git(_root, "worktree", "prune");
    }

    /// <summary>Removes a checkout: git drops its record, and the folder goes even when git refuses (a half-made checkout).</summary>
    private static void RemoveWorktree(string root, string directory)
    {
        _ = Git(root, "worktree", "remove", "--force", directory);
        if (System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The full paths of this repository's worktrees, as <c>git worktree list</c> records them.</summary>
    private static HashSet<string> Worktrees(string root)
    {
        var list = Git(root, "worktree", "list", "--porcelain");
        return list.ExitCode != 0
            ? []
            : [.. list.Output.Split('\n').Where(line => line.StartsWith("worktree ", StringComparison.Ordinal)).Select(line => Path.GetFullPath(line["worktree ".Length..].TrimEnd()))];
    }

    private static bool IsAlive(int pid) => System.IO.Directory.Exists($"/proc/{pid}");

    private static (int ExitCode, string Output) Git(string root, params string[] arguments) => Run("git", root, ["-C", root, .. arguments]);

    private static (int ExitCode, string Output) Run(string program, string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new GateSetupException($"could not start {program}.");
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.GetAwaiter().GetResult());
    }

    /// <summary>The last lines of a tool's output: where the error is.</summary>
    private static string Tail(string output)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no output)" : string.Join(" / ", lines[^Math.Min(lines.Length, 5)..]);
    }
}

/// <summary>The gate cannot run: no base to compare with, or settings too thin for a verdict.</summary>
internal sealed class GateSetupException(string message) : Exception(message);
