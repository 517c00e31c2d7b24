using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp.Splicing;

public sealed class CpuQuotaTests
{
    [Theory]
    [InlineData("max 100000\n", false)]
    [InlineData("150000 100000\n", true)]
    [InlineData("50000 100000", true)]
    [InlineData("", false)]
    [InlineData("garbage", false)]
    public void Limits_ReadsCgroupV2CpuMax(string cpuMax, bool limited) => Assert.Equal(limited, CpuQuota.Limits(cpuMax));

    [Theory]
    [InlineData("-1\n", false)]
    [InlineData("150000\n", true)]
    [InlineData("", false)]
    public void LimitsV1_ReadsCfsQuota(string quotaUs, bool limited) => Assert.Equal(limited, CpuQuota.LimitsV1(quotaUs));

    [Theory]
    [InlineData("0::/\n", "/sys/fs/cgroup/cpu.max")]
    [InlineData("1:cpu:/\n0::/system.slice/forwarder.service", "/sys/fs/cgroup/system.slice/forwarder.service/cpu.max /sys/fs/cgroup/system.slice/cpu.max /sys/fs/cgroup/cpu.max")]
    [InlineData("4:memory:/x\n", "/sys/fs/cgroup/cpu.max")]
    public void CpuMaxPaths_WalkFromTheOwnCgroupToTheRoot(string procSelfCgroup, string expected) =>
        Assert.Equal(expected.Split(' '), CpuQuota.CpuMaxPaths(procSelfCgroup.Split('\n')));
}
