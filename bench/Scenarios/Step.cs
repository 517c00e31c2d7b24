namespace Forwarder.Bench.Scenarios;

/// <summary>NBomber's spelling of a step: <c>await Step.Run("login", ctx, async () => ...)</c>.</summary>
public static class Step
{
    /// <summary>Runs <paramref name="step"/> as the step <paramref name="name"/> of the current invocation, timing and counting it on its own.</summary>
    public static ValueTask<Response> Run(string name, ScenarioContext context, Func<ValueTask<Response>> step)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(step);
        return context.Step(name, _ => step());
    }
}
