using System.Diagnostics;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One worker's view of a running scenario, reused for every invocation the worker makes: its
/// state (a connection, say) lives here between invocations.
/// </summary>
public sealed class ScenarioContext
{
    private readonly InvocationStats _stats;

    internal ScenarioContext(string scenarioName, int workerId, InvocationStats stats, CancellationToken stopping)
    {
        ScenarioName = scenarioName;
        WorkerId = workerId;
        _stats = stats;
        Stopping = stopping;
    }

    /// <summary>The scenario this context runs.</summary>
    public string ScenarioName { get; }

    /// <summary>This worker's number, from 0; in closed loop, copy n runs while more than n copies are wanted.</summary>
    public int WorkerId { get; }

    /// <summary>Invocations this worker has started, counting the current one.</summary>
    public long InvocationNumber { get; internal set; }

    /// <summary>Cancelled when the run ends or is stopped.</summary>
    public CancellationToken Stopping { get; }

    /// <summary>Whatever the scenario keeps per worker; set it in the scenario's init.</summary>
    public object? State { get; set; }

    /// <summary>
    /// Called from another thread when the current invocation overruns the scenario's timeout:
    /// make what it waits on fail (close its socket). The invocation then counts as a timeout.
    /// </summary>
    public Action? OnTimeout { get; set; }

    /// <summary>Whether this invocation falls in the measured window (after warm-up).</summary>
    internal bool Recording { get; set; }

    /// <summary>
    /// Guards the worker's stats against the runner: once the run stops waiting it closes the
    /// context and counts what is in flight as unfinished, and nothing finishing later records.
    /// </summary>
    internal Lock Gate { get; } = new();

    /// <summary>Set under <see cref="Gate"/> when the runner has stopped waiting for this worker.</summary>
    internal bool Closed { get; set; }

    /// <summary>The step running now, if any, and since when: a step still running when the run ends counts as unfinished.</summary>
    internal string? CurrentStep { get; private set; }

    internal long CurrentStepStarted { get; private set; }

    /// <summary>The <see cref="State"/> as a <typeparamref name="T"/>; throws when init set none.</summary>
    public T GetState<T>() => (T)(State ?? throw new InvalidOperationException($"Scenario '{ScenarioName}' has no state; set ctx.State in its init."));

    /// <summary>Runs one named step of the invocation and records its own latency and outcome.</summary>
    public async ValueTask<Response> Step(string name, Func<ScenarioContext, ValueTask<Response>> step)
    {
        var started = Stopwatch.GetTimestamp();
        (string?, long) outer;
        lock (Gate)
        {
            outer = (CurrentStep, CurrentStepStarted);
            (CurrentStep, CurrentStepStarted) = (name, started);
        }

        Response response;
        try
        {
            response = await step(this).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            response = Response.Fail($"{ex.GetType().Name}: {ex.Message}");
        }

        lock (Gate)
        {
            (CurrentStep, CurrentStepStarted) = outer;
            if (Recording && !Closed)
            {
                _stats.Step(name).Record(response, Stopwatch.GetElapsedTime(started));
            }
        }

        return response;
    }
}
