using System.Diagnostics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// What a NAT lab leaves behind: a lab nobody owns (its owner process died: a killed test run) is
/// swept before the next lab is built, namespaces, links and the processes in them; a lab whose
/// owner is alive is left alone, as it may be a test run beside this one. Ownership is a lock the
/// kernel drops when the owner dies, so a reused pid keeps no orphan; labs made before the lock go
/// by the rules of their day.
/// </summary>
public sealed class NatLabTests
{
    [Fact]
    public async Task SweepOrphans_DeletesLabsNobodyOwns_OfEveryFormat_AndKeepsLiveOnes()
    {
        using var dead = Process.Start("true")!;
        await dead.WaitForExitAsync();

        var (live, liveLock) = NatLab.Claim(Environment.ProcessId);
        var orphan = Unlocked(NatLab.Claim(dead.Id));

        // The owner died and its pid now belongs to a live process (this one): only the lock tells.
        var reused = Unlocked(NatLab.Claim(Environment.ProcessId));

        // Before the lock: pid and a random byte (dead pid), and 5 random hex digits, idle or busy.
        var legacy = Unlocked(NatLab.Claim(dead.Id));
        File.Delete($"/run/forwarder-natlab/{legacy}.lock");
        var (idle5, busy5, device5) = (FreeShortId(), FreeShortId(), FreeShortId());

        List<Process> processes = [];
        try
        {
            processes.Add(FakeLab(live));
            processes.Add(FakeLab(orphan));
            processes.Add(FakeLab(reused));
            processes.Add(FakeLab(legacy));
            processes.Add(FakeLab(busy5));
            using (var idle = FakeLab(idle5))
            {
                idle.Kill(); // no process left in it
                await idle.WaitForExitAsync();
            }

            // A link whose node namespace went, left in this namespace by a dispose cut short.
            NatLab.Run("ip", ["link", "add", $"fw{device5}m", "type", "veth", "peer", "name", $"na{device5}t"]);

            NatLab.SweepOrphans();

            var namespaces = NatLab.Run("ip", ["netns", "list"]);
            foreach (var gone in new[] { orphan, reused, legacy, idle5 })
            {
                Assert.DoesNotContain($"fw{gone}na", namespaces, StringComparison.Ordinal);
                Assert.DoesNotContain($"fw{gone}rb", namespaces, StringComparison.Ordinal);
                Assert.False(DeviceExists($"fw{gone}m"), $"fw{gone}m was deleted");
                Assert.False(File.Exists($"/run/forwarder-natlab/{gone}.lock"), $"{gone}'s lock file was deleted");
            }

            Assert.False(DeviceExists($"fw{device5}m"), "the stale device was deleted");
            foreach (var kept in new[] { live, busy5 })
            {
                Assert.Contains($"fw{kept}na", namespaces, StringComparison.Ordinal);
                Assert.True(DeviceExists($"fw{kept}m"), $"fw{kept}m was kept");
                Assert.Contains("DROP", NatLab.Exec($"fw{kept}rb", "iptables", "-S", "FORWARD"), StringComparison.Ordinal);
            }

            Assert.True(File.Exists($"/run/forwarder-natlab/{live}.lock"));
            foreach (var (process, i) in processes.Select((p, i) => (p, i)).Where(p => p.i is 1 or 2 or 3))
            {
                Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), $"the process left in dead lab {i}'s namespace was killed");
            }

            Assert.False(processes[0].HasExited, "the live lab's process runs on");
        }
        finally
        {
            foreach (var process in processes)
            {
                process.Kill();
                process.Dispose();
            }

            foreach (var id in new[] { live, orphan, reused, legacy, idle5, busy5, device5 })
            {
                NatLab.Run("ip", ["link", "del", $"fw{id}m"], check: false);
                NatLab.Run("ip", ["netns", "del", $"fw{id}na"], check: false);
                NatLab.Run("ip", ["netns", "del", $"fw{id}rb"], check: false);
                File.Delete($"/run/forwarder-natlab/{id}.lock");
            }

            liveLock.Dispose();
        }
    }

    [Fact]
    public async Task LabIdsClaimedAtOnce_InOneProcess_AreAllDistinct()
    {
        var claims = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => NatLab.Claim(Environment.ProcessId))));
        try
        {
            Assert.Equal(claims.Length, claims.Select(c => c.Id).Distinct(StringComparer.Ordinal).Count());
            Assert.All(claims, c => Assert.StartsWith($"{Environment.ProcessId:x6}", c.Id, StringComparison.Ordinal));
        }
        finally
        {
            foreach (var (id, held) in claims)
            {
                File.Delete($"/run/forwarder-natlab/{id}.lock");
                held.Dispose();
            }
        }
    }

    /// <summary>The id, its lock let go as its owner's death would.</summary>
    private static string Unlocked((string Id, FileStream Lock) claim)
    {
        claim.Lock.Dispose();
        return claim.Id;
    }

    /// <summary>A 5-hex id in the first labs' format that nothing on the machine carries.</summary>
    private static string FreeShortId()
    {
        var names = NatLab.Run("ip", ["netns", "list"]) + NatLab.Run("ip", ["-br", "link", "show"]);
        while (true)
        {
            var id = $"{Random.Shared.Next(0x100000):x5}";
            if (!names.Contains($"fw{id}", StringComparison.Ordinal))
            {
                return id;
            }
        }
    }

    /// <summary>
    /// The parts of a lab the sweep must find: a node namespace linked to this one, a router
    /// namespace with a firewall rule, and a process running in the node namespace (returned).
    /// </summary>
    private static Process FakeLab(string id)
    {
        NatLab.Run("ip", ["netns", "add", $"fw{id}na"]);
        NatLab.Run("ip", ["netns", "add", $"fw{id}rb"]);
        NatLab.Run("ip", ["link", "add", $"fw{id}m", "type", "veth", "peer", "name", $"na{id}t"]);
        NatLab.Run("ip", ["link", "set", $"na{id}t", "netns", $"fw{id}na"]);
        NatLab.Exec($"fw{id}rb", "iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP");
        return Process.Start("ip", ["netns", "exec", $"fw{id}na", "sleep", "300"]);
    }

    private static bool DeviceExists(string device) => NatLab.Run("ip", ["-br", "link", "show"]).Split('\n').Any(line => line.Split(' ')[0].Split('@')[0] == device);
}
