using System.Globalization;
using System.Text.RegularExpressions;

namespace Forwarder.Tests.Infrastructure;

/// <content>
/// Who owns a lab, and sweeping the labs nobody does. A lab's id is its owner's pid in 6 hex digits
/// and a count kept per process, so no two labs of one process share an id, nor do labs of two
/// live processes. The owner holds a lock on a file named for the id (in <see cref="LockDirectory"/>)
/// from before the lab's first namespace until after its last is gone, and the kernel drops the
/// lock when the owner dies, however it dies. So a lab whose lock can be taken is an orphan, also
/// when its pid was reused since, or when its owner runs in another PID namespace sharing /run.
/// Labs made before the lock are swept by the rules of their day: 8-hex ids (pid and a random byte)
/// when no process has the pid; 5-hex ids (random, naming no owner) when no process runs in any of
/// their namespaces (a run of that code between two tests is then taken for dead: it is long gone).
/// </content>
internal sealed partial class NatLab
{
    /// <summary>Where the owners' lock files are: outside /run/netns, which <c>ip netns list</c> reads whole.</summary>
    private const string LockDirectory = "/run/forwarder-natlab";

    /// <summary>The labs this process has claimed: the low byte of each lab's id.</summary>
    private static int s_claimed;

    /// <summary>
    /// A lab id of <paramref name="pid"/>'s that nothing on the machine carries, and its lock, held
    /// until the stream is disposed. Ids a dead process with the same pid left (the sweep keeps
    /// those of the old random format while the pid is taken) are passed over.
    /// </summary>
    public static (string Id, FileStream Lock) Claim(int pid)
    {
        Directory.CreateDirectory(LockDirectory);
        var taken = LabIds(Lines(Run("ip", ["netns", "list"])), HostDevices());
        for (var attempt = 0; attempt < 256; attempt++)
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"{pid:x6}{(byte)Interlocked.Increment(ref s_claimed):x2}");
            if (!taken.Contains(id) && TryLock(id, FileMode.OpenOrCreate) is { } held)
            {
                return (id, held);
            }
        }

        throw new InvalidOperationException($"no NAT lab id is free for pid {pid}: 256 labs of it are up");
    }

    /// <summary>
    /// Deletes what labs nobody owns left behind: the processes still running in their namespaces
    /// (nodes a killed test run started), this namespace's ends of their links, the namespaces
    /// (with every iptables rule, which all live inside them) and the lock file. A live owner's lab
    /// is never touched, as it may be a test run beside this one.
    /// </summary>
    public static void SweepOrphans()
    {
        var namespaces = Lines(Run("ip", ["netns", "list"]));
        var devices = HostDevices();
        var labs = LabIds(namespaces, devices);
        labs.UnionWith(Directory.Exists(LockDirectory)
            ? Directory.EnumerateFiles(LockDirectory, "*.lock").Select(file => Path.GetFileNameWithoutExtension(file)).Where(id => LabId().IsMatch(id))
            : []);
        foreach (var id in labs)
        {
            var own = namespaces.Where(ns => LabNamespace().Match(ns) is { Success: true } lab && lab.Groups[1].Value == id).ToList();
            var locked = File.Exists(LockFile(id));
            using var claim = locked ? TryLock(id, FileMode.Open) : null;
            if (locked ? claim is null : !OrphanedBeforeLocks(id, own))
            {
                continue;
            }

            foreach (var ns in own)
            {
                foreach (var pid in Lines(Run("ip", ["netns", "pids", ns], check: false)))
                {
                    Run("kill", ["-KILL", pid], check: false);
                }
            }

            // Deleted before the namespaces, as in Dispose: a namespace outlives its name while sockets in it still retransmit.
            foreach (var device in devices.Select(name => HostDevice().Match(name)).Where(device => device.Success && device.Groups[2].Value == id))
            {
                Run("ip", ["link", "del", device.Groups[1].Value], check: false);
            }

            foreach (var ns in own)
            {
                Run("ip", ["netns", "del", ns], check: false);
            }

            if (claim is not null)
            {
                File.Delete(LockFile(id));
            }
        }
    }

    private static string LockFile(string id) => Path.Combine(LockDirectory, id + ".lock");

    /// <summary>The lab's lock, taken (FileShare.None is an flock on Linux); null when its owner holds it (or the file went).</summary>
    private static FileStream? TryLock(string id, FileMode mode)
    {
        try
        {
            return new FileStream(LockFile(id), mode, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether a lab with no lock file, made before there were any (or mid-way through its owner's dispose), has no owner.</summary>
    private static bool OrphanedBeforeLocks(string id, List<string> namespaces) => id.Length == 8
        ? !Directory.Exists($"/proc/{int.Parse(id[..6], NumberStyles.HexNumber, CultureInfo.InvariantCulture)}")
        : namespaces.All(ns => Lines(Run("ip", ["netns", "pids", ns], check: false)).Count == 0);

    /// <summary>The lab ids that namespace and device names carry.</summary>
    private static HashSet<string> LabIds(List<string> namespaces, List<string> devices) =>
    [
        .. namespaces.Select(ns => LabNamespace().Match(ns)).Where(lab => lab.Success).Select(lab => lab.Groups[1].Value),
        .. devices.Select(name => HostDevice().Match(name)).Where(device => device.Success).Select(device => device.Groups[2].Value),
    ];

    /// <summary>The names of the devices in this namespace (<c>ip -br</c> gives a veth's as name@peer).</summary>
    private static List<string> HostDevices() => [.. Lines(Run("ip", ["-br", "link", "show"])).Select(word => word.Split('@')[0])];

    /// <summary>The first word of each non-empty line.</summary>
    private static List<string> Lines(string output) => [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(line => line.Split(' ')[0])];

    /// <summary>A lab id: the owner's pid in 6 hex digits and a count (or, before that, a random byte); 5 random hex digits in the first labs.</summary>
    [GeneratedRegex("^([0-9a-f]{8}|[0-9a-f]{5})$")]
    private static partial Regex LabId();

    /// <summary>A lab's namespace: fw, the lab id, the role (no role starts with a hex digit, so the id's length is never in doubt).</summary>
    [GeneratedRegex("^fw([0-9a-f]{8}|[0-9a-f]{5})(wan|rly|ra|rb|na|nb)$")]
    private static partial Regex LabNamespace();

    /// <summary>A lab's device in this namespace: fw, the lab id, m (to node A) or n (to node B).</summary>
    [GeneratedRegex("^(fw([0-9a-f]{8}|[0-9a-f]{5})[mn])$")]
    private static partial Regex HostDevice();
}
