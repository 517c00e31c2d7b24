using System.Diagnostics;
using System.Runtime.CompilerServices;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One worker of a run: its own context, state and stats, walking the plan's phases. In an
/// open-loop phase it takes the next ticket, waits for its intended time and invokes; in a closed
/// loop it invokes back to back while its copy is wanted. What it has taken on and not finished
/// when the run stops waiting is counted by <see cref="Close"/>, so no invocation goes missing.
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

    // Set when a threshold broke: nothing new starts, what runs may finish in the grace period.
    private volatile bool _draining;

    // The invocation this worker owes the stats (a ticket taken, or a closed-loop turn begun, and
    // not yet recorded) and its start once it has started; these and the fields above are written
    // under the context's gate (the watchdog reads _invocationStarted without it first).
    private bool _holding;
    private long _heldIntended;
    private long _heldStarted;

    public ScenarioWorker(int id, Scenario scenario, LoadPlan plan, Pacer pacer, CancellationToken stopping)
    {
        _scenario = scenario;
        _plan = plan;
        _pacer = pacer;
        Stats = new InvocationStats(trackIntervals: scenario.Intervals is not null);
        Context = new ScenarioContext(scenario.Name, id, Stats, stopping);
    }

    public ScenarioContext Context { get; }

    public InvocationStats Stats { get; }

    /// <summary>Takes what this worker recorded since the last call, leaving <paramref name="empty"/> to record into.</summary>
    public LongHistogram SwapInterval(LongHistogram empty)
    {
        lock (Context.Gate)
        {
            return Stats.SwapInterval(empty);
        }
    }

    /// <summary>Called by the watchdog: aborts the current invocation if it started before <paramref name="startedBefore"/>.</summary>
    public void AbortIfStartedBefore(long startedBefore)
    {
        var started = Volatile.Read(ref _invocationStarted);
        if (started == 0 || started >= startedBefore)
        {
            return;
        }

        // Under the gate the invocation's end cannot slip in between the check and the abort: an
        // invocation that just finished is not marked, and the next one's connection not cut.
        lock (Context.Gate)
        {
            started = _invocationStarted;
            if (started == 0 || started >= startedBefore || _timedOutInvocation == _invocation)
            {
                return;
            }

            _timedOutInvocation = _invocation;
            Context.OnTimeout?.Invoke();
        }
    }

    /// <summary>The run was aborted: start nothing more (what runs now may still finish and count).</summary>
    public void Drain() => _draining = true;

    /// <summary>
    /// The run has stopped waiting at <paramref name="at"/>: nothing this worker finishes from now
    /// on is recorded, and the invocation it owes (due by <paramref name="dueBy"/>, measured, not
    /// finished) counts as unfinished, with its running step if it has one.
    /// </summary>
    public void Close(long at, long dueBy)
    {
        lock (Context.Gate)
        {
            Context.Closed = true;

            // A ticket not yet due when a run is stopped early was never part of it.
            if (!_holding || _heldIntended < _plan.MeasureStart || _heldIntended > dueBy)
            {
                return;
            }

            var started = _heldStarted;
            Stats.RecordUnfinished(Stopwatch.GetElapsedTime(_heldIntended, at), started == 0 ? null : Stopwatch.GetElapsedTime(started, at));
            if (Context.CurrentStep is { } step)
            {
                Stats.Step(step).RecordUnfinished(Stopwatch.GetElapsedTime(Context.CurrentStepStarted, at));
            }
        }
    }

    public async Task RunAsync()
    {
        foreach (var phase in _plan.Phases)
        {
            await _pacer.WaitUntilAsync(_waiter, phase.Begin).ConfigureAwait(false);
            if (Context.Stopping.IsCancellationRequested)
            {
                return;
            }

            if (phase.IsOpenLoop)
            {
                // Tickets are taken however late it is: a backlog due before the end is worked
                // off in the grace period, and whatever is left then is counted by the runner.
                while (TryTakeTicket(phase, out var intended))
                {
                    await _pacer.WaitUntilAsync(_waiter, intended).ConfigureAwait(false);
                    if (Context.Stopping.IsCancellationRequested || _draining)
                    {
                        return;
                    }

                    await InvokeAsync(intended).ConfigureAwait(false);
                }
            }
            else if (phase.Simulation is IterationsSimulation iterations)
            {
                // The copies share the count: each takes the next iteration until none are left.
                while (Context.WorkerId < iterations.Copies && Stopwatch.GetTimestamp() < phase.End && TryTakeTicket(phase, out var intended))
                {
                    await InvokeAsync(intended).ConfigureAwait(false);
                    if (Context.Stopping.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
            else
            {
                for (var now = Stopwatch.GetTimestamp(); now < phase.End; now = Stopwatch.GetTimestamp())
                {
                    if (Context.WorkerId < phase.CopiesAt(now))
                    {
                        if (!TryHold(now))
                        {
                            return;
                        }

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
        }
    }

    private bool TryTakeTicket(LoadPhase phase, out long intended)
    {
        lock (Context.Gate)
        {
            if (Context.Closed || _draining || !phase.TryTakeTicket(out intended))
            {
                intended = 0;
                return false;
            }

            Hold(intended);
            return true;
        }
    }

    private bool TryHold(long intended)
    {
        lock (Context.Gate)
        {
            if (Context.Closed || _draining)
            {
                return false;
            }

            Hold(intended);
            return true;
        }
    }

    private void Hold(long intended)
    {
        _holding = true;
        _heldIntended = intended;
        _heldStarted = 0;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask InvokeAsync(long intended)
    {
        var started = Stopwatch.GetTimestamp();
        long invocation;
        lock (Context.Gate)
        {
            invocation = ++_invocation;
            Volatile.Write(ref _invocationStarted, started);
            _heldStarted = started;
        }

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
        lock (Context.Gate)
        {
            Volatile.Write(ref _invocationStarted, 0);

            // Closed: the runner stopped waiting and has counted this one as unfinished.
            if (Context.Closed)
            {
                return;
            }

            var timedOut = _timedOutInvocation == invocation;
            if (timedOut)
            {
                response = Response.Fail("timeout", response.StatusCode, response.SizeBytes);
            }

            _holding = false;

            // Invocations meant for the warm-up are not counted.
            if (Context.Recording)
            {
                Stats.Record(response, Stopwatch.GetElapsedTime(intended, ended), Stopwatch.GetElapsedTime(started, ended), timedOut, ended <= _plan.End);
                if (!timedOut && ended >= _plan.MeasureStart && ended <= _plan.End)
                {
                    Stats.CountCompleted((int)((ended - _plan.MeasureStart) / Stopwatch.Frequency));
                }
            }
        }
    }
}
