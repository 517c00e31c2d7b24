using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One worker of a run: its own context, state and stats, walking the plan's phases. In an
/// open-loop phase it takes the next ticket, waits for its intended time and invokes; in a closed
/// loop it invokes back to back while its copy is wanted.
/// </summary>
internal sealed class ScenarioWorker
{
    private static readonly long IdlePoll = Stopwatch.Frequency / 1000;

    private readonly Scenario _scenario;
    private readonly LoadPlan _plan;
    private readonly Pacer _pacer;
    private readonly PacedWaiter _waiter = new();
    private long _invocationStarted;
    private long _invocation;
    private long _timedOutInvocation = -1;

    public ScenarioWorker(int id, Scenario scenario, LoadPlan plan, Pacer pacer, CancellationToken stopping)
    {
        _scenario = scenario;
        _plan = plan;
        _pacer = pacer;
        Context = new ScenarioContext(scenario.Name, id, Stats, stopping);
    }

    public ScenarioContext Context { get; }

    public InvocationStats Stats { get; } = new();

    /// <summary>Called by the watchdog: aborts the current invocation if it started before <paramref name="startedBefore"/>.</summary>
    public void AbortIfStartedBefore(long startedBefore)
    {
        var invocation = Volatile.Read(ref _invocation);
        var started = Volatile.Read(ref _invocationStarted);
        if (started == 0 || started >= startedBefore || Volatile.Read(ref _timedOutInvocation) == invocation)
        {
            return;
        }

        Volatile.Write(ref _timedOutInvocation, invocation);
        Context.OnTimeout?.Invoke();
    }

    public async Task RunAsync()
    {
        foreach (var phase in _plan.Phases)
        {
            await _pacer.WaitUntilAsync(_waiter, phase.Begin).ConfigureAwait(false);
            if (phase.IsOpenLoop)
            {
                while (phase.TryTakeTicket(out var intended))
                {
                    await _pacer.WaitUntilAsync(_waiter, intended).ConfigureAwait(false);
                    if (Stopped())
                    {
                        return;
                    }

                    await InvokeAsync(intended).ConfigureAwait(false);
                }
            }
            else
            {
                for (var now = Stopwatch.GetTimestamp(); now < phase.End; now = Stopwatch.GetTimestamp())
                {
                    if (Context.WorkerId < phase.CopiesAt(now))
                    {
                        await InvokeAsync(now).ConfigureAwait(false);
                    }
                    else
                    {
                        await _pacer.WaitUntilAsync(_waiter, Math.Min(phase.End, now + IdlePoll)).ConfigureAwait(false);
                    }

                    if (Context.Stopping.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }

            if (Stopped())
            {
                return;
            }
        }
    }

    private bool Stopped() => Context.Stopping.IsCancellationRequested || Stopwatch.GetTimestamp() >= _plan.End;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask InvokeAsync(long intended)
    {
        var started = Stopwatch.GetTimestamp();
        var invocation = ++_invocation;
        Volatile.Write(ref _invocation, invocation);
        Volatile.Write(ref _invocationStarted, started);
        Context.InvocationNumber = invocation;
        Context.Recording = intended >= _plan.MeasureStart;
        Response response;
        try
        {
            response = await _scenario.Run(Context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            response = Response.Fail($"{ex.GetType().Name}: {ex.Message}");
        }

        var ended = Stopwatch.GetTimestamp();
        Volatile.Write(ref _invocationStarted, 0);
        var timedOut = Volatile.Read(ref _timedOutInvocation) == invocation;
        if (timedOut)
        {
            response = Response.Fail("timeout", response.StatusCode, response.SizeBytes);
        }

        // Invocations meant for the warm-up, or finishing after the end, are not counted.
        if (Context.Recording && ended <= _plan.End)
        {
            Stats.Record(response, Stopwatch.GetElapsedTime(intended, ended), Stopwatch.GetElapsedTime(started, ended), timedOut);
        }
    }
}
