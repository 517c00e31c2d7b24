using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>Freezes processes for a while at a fixed period, on a thread of its own, until disposed (which leaves them running).</summary>
internal sealed class GateFreezer : IDisposable
{
    private readonly GateFreeze _freeze;
    private readonly IReadOnlyList<PeerProcess> _processes;
    private readonly Thread _thread;
    private volatile bool _stopped;

    public GateFreezer(GateFreeze freeze, IReadOnlyList<PeerProcess> processes)
    {
        _freeze = freeze;
        _processes = processes;
        _thread = new Thread(Run) { IsBackground = true, Name = "gate-freezer" };
        _thread.Start();
    }

    public void Dispose()
    {
        _stopped = true;
        _thread.Join();
    }

    private void Run()
    {
        while (!_stopped)
        {
            Thread.Sleep(_freeze.Every - _freeze.Length);
            Suspend(true);
            Thread.Sleep(_freeze.Length);
            Suspend(false);
        }
    }

    private void Suspend(bool suspended)
    {
        foreach (var process in _processes)
        {
            process.Suspend(suspended);
        }
    }
}
