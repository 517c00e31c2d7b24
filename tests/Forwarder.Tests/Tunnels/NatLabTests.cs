using System.Diagnostics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// What a NAT lab leaves behind: a lab whose owner process died (a killed test run) is swept
/// before the next lab is built, namespaces, links and the processes in them; a lab whose owner
/// is alive is left alone, as it may be a test run beside this one.
/// </summary>
public sealed class NatLabTests
{
    [Fact]
    public async Task SweepOrphans_DeletesALabWhoseOwnerIsDead_AndKeepsOneWhoseOwnerIsAlive()
    {
        using var dead = Process.Start("true")!;
        await dead.WaitForExitAsync();
        var orphan = NatLab.OwnerId(dead.Id);
        var live = NatLab.OwnerId(Environment.ProcessId);
        using var leftover = FakeLab(orphan);
        using var running = FakeLab(live);
        try
        {
            NatLab.SweepOrphans();

            var namespaces = NatLab.Run("ip", ["netns", "list"]);
            Assert.DoesNotContain($"fw{orphan}na", namespaces, StringComparison.Ordinal);
            Assert.DoesNotContain($"fw{orphan}rb", namespaces, StringComparison.Ordinal);
            Assert.Contains($"fw{live}na", namespaces, StringComparison.Ordinal);
            Assert.Contains($"fw{live}rb", namespaces, StringComparison.Ordinal);
            Assert.False(DeviceExists($"fw{orphan}m"));
            Assert.True(DeviceExists($"fw{live}m"));
            Assert.True(leftover.WaitForExit(TimeSpan.FromSeconds(30)), "the process left in the dead lab's namespace was killed");
            Assert.Contains("DROP", NatLab.Exec($"fw{live}rb", "iptables", "-S", "FORWARD"), StringComparison.Ordinal);
        }
        finally
        {
            running.Kill();
            NatLab.Run("ip", ["link", "del", $"fw{live}m"], check: false);
            foreach (var id in new[] { orphan, live })
            {
                NatLab.Run("ip", ["netns", "del", $"fw{id}na"], check: false);
                NatLab.Run("ip", ["netns", "del", $"fw{id}rb"], check: false);
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

    private static bool DeviceExists(string device) => NatLab.Run("ip", ["-o", "link", "show"]).Contains($": {device}@", StringComparison.Ordinal);
}
